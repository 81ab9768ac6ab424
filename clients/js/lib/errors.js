// RoomcastError: the one error type of this client, from an error ack, a refused
// connection, or the client itself (a timeout, a close). Its `code` is the protocol's.

// Error acks worth retrying after a pause (besides any that say `temporary: true`).
const RETRYABLE_ACK_CODES = new Set(["rate_limited", "broker_unavailable"]);

/** An error from roomcast (an error ack or a refused connection) or from this client. */
export class RoomcastError extends Error {
  /**
   * @param {string} code  the protocol's error code (`conflict`, `locked`, `auth_invalid`, ...)
   *   or one of this client's: `timeout`, `disconnected`, `closed`, `left`, `invalid_ack`
   * @param {string} message  for people
   * @param {object} [details]  the other fields of the error (`current_version`, `holder`,
   *   `expires_at`, `retry_after_ms`, `temporary`, ...)
   */
  constructor(code, message, details = {}) {
    super(message || code);
    this.name = "RoomcastError";
    this.code = code;
    this.details = details;
  }

  /** True when trying again later may succeed. */
  get temporary() {
    return Boolean(this.details && this.details.temporary) || RETRYABLE_ACK_CODES.has(this.code);
  }

  /** The error carried by an `{ok: false, error}` ack. */
  static fromAck(ack) {
    const error = ack && typeof ack.error === "object" && ack.error !== null ? ack.error : {};
    const { code = "invalid_ack", message = "the server refused the request", ...details } = error;
    return new RoomcastError(code, message, details);
  }
}
