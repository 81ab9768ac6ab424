// Backoff: bounds, full jitter with an injected random, reset. Pure, no I/O.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { Backoff } from "../roomcast-client.js";

describe("Backoff", () => {
  test("the bound doubles from the initial delay and is capped", () => {
    const backoff = new Backoff({ initialDelayMs: 500, maxDelayMs: 30000, multiplier: 2 });
    assert.deepEqual(
      [0, 1, 2, 3, 4, 5, 6, 7, 100, 5000].map((n) => backoff.bound(n)),
      [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000],
    );
  });

  test("defaults: 500 ms first bound, doubling, 30 s cap", () => {
    const backoff = new Backoff({ random: () => 1 });
    assert.deepEqual(
      Array.from({ length: 8 }, () => backoff.next()),
      [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000],
    );
  });

  test("full jitter: delay = random() * bound, anywhere from 0 up to the bound", () => {
    const draws = [0, 0.25, 0.5, 0.999, 0.1];
    const backoff = new Backoff({ initialDelayMs: 100, maxDelayMs: 1000, multiplier: 3, random: () => draws.shift() });
    assert.deepEqual(
      Array.from({ length: 5 }, () => backoff.next()),
      [0 * 100, 0.25 * 300, 0.5 * 900, 0.999 * 1000, 0.1 * 1000],
    );
    assert.equal(backoff.attempt, 5);
  });

  test("delays spread over the whole range and never leave it", () => {
    let state = 42; // a small deterministic generator (LCG) as the injected random
    const random = () => {
      state = (state * 1103515245 + 12345) % 2 ** 31;
      return state / 2 ** 31;
    };
    const samples = [];
    for (let i = 0; i < 2000; i += 1) {
      const backoff = new Backoff({ initialDelayMs: 500, maxDelayMs: 30000, random });
      for (let n = 0; n < 10; n += 1) {
        const delay = backoff.next();
        assert.ok(delay >= 0 && delay <= backoff.bound(n), `${delay} outside [0, ${backoff.bound(n)}]`);
        if (n === 3) samples.push(delay / backoff.bound(3));
      }
    }
    // Full jitter: the 4th delay, as a fraction of its bound, fills every tenth of [0, 1).
    const deciles = new Array(10).fill(0);
    for (const fraction of samples) deciles[Math.min(9, Math.floor(fraction * 10))] += 1;
    for (const count of deciles) assert.ok(count > 120 && count < 280, `uneven spread ${deciles}`);
  });

  test("reset starts over from the initial bound", () => {
    const backoff = new Backoff({ initialDelayMs: 10, maxDelayMs: 1000, random: () => 1 });
    backoff.next();
    backoff.next();
    assert.equal(backoff.next(), 40);
    backoff.reset();
    assert.equal(backoff.attempt, 0);
    assert.equal(backoff.next(), 10);
  });

  test("a huge attempt count stays at the cap (no overflow, no NaN)", () => {
    const backoff = new Backoff({ initialDelayMs: 1, maxDelayMs: 50, random: () => 0.5 });
    backoff.attempt = 100000;
    assert.equal(backoff.next(), 25);
  });

  test("rejects nonsense settings", () => {
    assert.throws(() => new Backoff({ initialDelayMs: 0 }), RangeError);
    assert.throws(() => new Backoff({ initialDelayMs: 100, maxDelayMs: 50 }), RangeError);
    assert.throws(() => new Backoff({ multiplier: 0.5 }), RangeError);
  });
});
