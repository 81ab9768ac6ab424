// RoomStream: the ordering state machine of one room. Pure: it decides, the client acts.

// A fill rejoin that does not move a room forward this many times in a row gives up
// on the missing events: the stream jumps ahead and asks the application to resync.
const MAX_FRUITLESS_FILLS = 3;

/**
 * The ordering state machine of one room: it decides what to hand to the application,
 * the client acts on its decisions. It keeps the room's position {epoch, seq} (the last
 * event handed over) and holds events that arrived after a gap until the gap is filled.
 *
 * `offer(envelope)` and `joined(ack)` return a Step:
 *   { decision, deliver: [envelope, ...], resync: {epoch, seq} | null, rejoin: {epoch, seq} | null }
 * - `deliver`: hand these to the application now, in this order;
 * - `resync`: tell the application to reload the room's state (before delivering);
 * - `rejoin`: some events are missing: join the room again with this position as `since`.
 */
export class RoomStream {
  constructor(room = null, position = null) {
    this.room = room;
    this.epoch = position ? position.epoch : null;
    this.seq = position ? position.seq : 0;
    this._held = new Map(); // seq -> envelope, events after a gap
    this._fruitlessFills = 0;
  }

  /** The last position handed over, or null before the first event or join ack. */
  get position() {
    return this.epoch === null ? null : { epoch: this.epoch, seq: this.seq };
  }

  /** How many events wait for a gap to be filled. */
  get held() {
    return this._held.size;
  }

  /** Decide about one sequenced event ({room, epoch, seq, skipped?, ...}). */
  offer(envelope) {
    const { epoch } = envelope;
    const seq = Number(envelope.seq);
    if (this.epoch === null) {
      // No position yet: adopt the event's.
      this.epoch = epoch;
      this.seq = seq;
      return step("deliver", [envelope]);
    }
    if (epoch !== this.epoch) {
      // The room's history was lost: this event starts the new epoch.
      this.epoch = epoch;
      this.seq = seq;
      this._held.clear();
      this._fruitlessFills = 0;
      return step("resync", [envelope], { epoch, seq });
    }
    if (seq <= this.seq || this._held.has(seq)) return step("duplicate");
    if (this._follows(envelope, seq)) {
      this.seq = seq;
      return step("deliver", [envelope, ...this._release()]);
    }
    this._held.set(seq, envelope);
    return step("gap", [], null, this.position);
  }

  /**
   * Take a `skipped` notice ({room, skipped, seq}): a detection stream that went quiet
   * while this client was behind skipped `skipped` events up to `seq` on purpose.
   */
  skippedTo(notice) {
    const seq = Number(notice.seq);
    const count = Number(notice.skipped);
    if (this.epoch === null || seq <= this.seq) return step("duplicate");
    if (seq - count !== this.seq) return step("gap", [], null, this.position);
    this.seq = seq;
    return step("deliver", this._release());
  }

  /** Take a join ack ({epoch, seq, recovered, ...}) into account. */
  joined(ack) {
    const epoch = ack.epoch;
    const seq = Number(ack.seq);
    const before = this.seq;
    if (this.epoch === null) {
      this.epoch = epoch;
      this.seq = seq;
      const deliver = this._release();
      return step("adopted", deliver, null, this._held.size ? this.position : null);
    }
    let resync = null;
    let decision = "recovered";
    if (ack.recovered === false || epoch !== this.epoch) {
      if (epoch !== this.epoch) this._held.clear();
      this.epoch = epoch;
      this.seq = seq;
      this._fruitlessFills = 0;
      resync = { epoch, seq };
      decision = "resync";
    } else if (seq > this.seq) {
      this.seq = seq;
    }
    let deliver = this._release();
    let rejoin = null;
    if (this._held.size) {
      if (this.seq === before && decision !== "resync") this._fruitlessFills += 1;
      else this._fruitlessFills = 0;
      if (this._fruitlessFills >= MAX_FRUITLESS_FILLS) {
        // The server cannot fill the gap: jump to the held events and say so.
        const first = Math.min(...this._held.keys());
        const envelope = this._held.get(first);
        this._held.delete(first);
        this.seq = first;
        this._fruitlessFills = 0;
        resync = { epoch: this.epoch, seq: first };
        decision = "resync";
        deliver = [...deliver, envelope, ...this._release()];
      }
      if (this._held.size) rejoin = this.position;
    } else {
      this._fruitlessFills = 0;
    }
    return step(decision, deliver, resync, rejoin);
  }

  /** Forget the position and anything held (after leaving the room). */
  reset() {
    this.epoch = null;
    this.seq = 0;
    this._held.clear();
    this._fruitlessFills = 0;
  }

  _follows(envelope, seq) {
    if (seq === this.seq + 1) return true;
    const skipped = envelope.skipped;
    return typeof skipped === "number" && skipped > 0 && seq === this.seq + 1 + skipped;
  }

  /** Held events that now follow the position, in order; drops those behind it. */
  _release() {
    const out = [];
    if (!this._held.size) return out;
    for (const seq of [...this._held.keys()].sort((a, b) => a - b)) {
      const envelope = this._held.get(seq);
      if (seq <= this.seq) {
        this._held.delete(seq);
      } else if (this._follows(envelope, seq)) {
        this._held.delete(seq);
        this.seq = seq;
        out.push(envelope);
      } else {
        break;
      }
    }
    return out;
  }
}

function step(decision, deliver = [], resync = null, rejoin = null) {
  return { decision, deliver, resync, rejoin };
}
