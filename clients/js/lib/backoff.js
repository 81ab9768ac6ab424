// Backoff: reconnect and retry delays, exponential with full jitter, capped. Pure.
//
// Full jitter (a uniformly random delay between 0 and the exponential bound) spreads
// the reconnects of many clients that lost the same server, instead of having them
// retry in step. The same policy as the Python SDK's roomcast.client.Backoff.

/**
 * Reconnect delays: exponential growth with full jitter, capped.
 * The n-th delay (0-based) is `random() * min(maxDelayMs, initialDelayMs * multiplier ** n)`;
 * `reset()` starts over (the client calls it once a connection stayed up long enough).
 */
export class Backoff {
  constructor({ initialDelayMs = 500, maxDelayMs = 30000, multiplier = 2, random = Math.random } = {}) {
    if (!(initialDelayMs > 0) || !(maxDelayMs >= initialDelayMs) || !(multiplier >= 1)) {
      throw new RangeError("Backoff needs 0 < initialDelayMs <= maxDelayMs and multiplier >= 1");
    }
    if (typeof random !== "function") throw new TypeError("Backoff: random must be a function");
    this.initialDelayMs = initialDelayMs;
    this.maxDelayMs = maxDelayMs;
    this.multiplier = multiplier;
    this.random = random;
    this.attempt = 0;
  }

  /** The largest delay of the given attempt (0-based), in ms. */
  bound(attempt) {
    // multiplier ** attempt grows to Infinity, never NaN: min() caps it.
    return Math.min(this.maxDelayMs, this.initialDelayMs * this.multiplier ** attempt);
  }

  /** The delay before the next attempt, in ms; counts the attempt. */
  next() {
    const delay = this.random() * this.bound(this.attempt);
    this.attempt += 1;
    return delay;
  }

  reset() {
    this.attempt = 0;
  }
}
