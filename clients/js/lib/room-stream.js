// RoomStream: the ordering state machine of one room. Pure: it decides, the client acts.
//
// The gap rule, the same in the Python SDK (roomcast.client.stream): an event that does
// not follow the position is dropped, and the room is joined again with `since` = the
// position. Holding the later events would save nothing: the rejoin replays everything
// after `since`, those events included, and the server parks live events during the
// replay, so the replay, then the ack, then live events arrive in seq order without a
// gap. A gap the history can no longer fill is answered `recovered: false` (a resync).
// docs/clients.md, "One gap rule", says why this rule and not holding.

/**
 * The ordering state machine of one room: it decides what to hand to the application,
 * the client acts on its decisions. It keeps the room's position {epoch, seq}: the last
 * event handed over.
 *
 * `offer(envelope)`, `skippedTo(notice)` and `joined(ack)` return a Step:
 *   { decision, deliver: [envelope, ...], resync: {epoch, seq} | null, rejoin: {epoch, seq} | null }
 * - `decision`: "deliver", "duplicate", "gap" or "resync" (and "adopted" or "recovered"
 *   for a join ack);
 * - `deliver`: hand these to the application now, in this order;
 * - `resync`: tell the application to reload the room's state (before delivering);
 * - `rejoin`: some events are missing: join the room again with this position as `since`.
 */
export class RoomStream {
  constructor(room = null, position = null) {
    this.room = room;
    this.epoch = position ? position.epoch : null;
    this.seq = position ? position.seq : 0;
  }

  /** The last position handed over, or null before the first event or join ack. */
  get position() {
    return this.epoch === null ? null : { epoch: this.epoch, seq: this.seq };
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
      return step("resync", [envelope], { epoch, seq });
    }
    if (seq <= this.seq) return step("duplicate");
    if (this._follows(envelope, seq)) {
      this.seq = seq;
      return step("deliver", [envelope]);
    }
    return step("gap", [], null, this.position);
  }

  /**
   * Take a `skipped` notice ({room, skipped, seq}): a detection stream that went quiet
   * while this client was behind skipped `skipped` events up to `seq` on purpose.
   * "deliver" means the position moved to `seq` (hand the notice to the application);
   * a notice that does not meet the position is a gap like any other.
   */
  skippedTo(notice) {
    const seq = Number(notice.seq);
    const count = Number(notice.skipped);
    if (this.epoch === null || seq <= this.seq) return step("duplicate");
    if (seq - count !== this.seq) return step("gap", [], null, this.position);
    this.seq = seq;
    return step("deliver");
  }

  /**
   * Take a join ack ({epoch, seq, recovered, ...}) into account. The replay passed
   * through `offer` before the ack, so a recovered ack only confirms the position;
   * `recovered: false` or another epoch means the application must reload the room.
   */
  joined(ack) {
    const epoch = ack.epoch;
    const seq = Number(ack.seq);
    if (this.epoch === null) {
      this.epoch = epoch;
      this.seq = seq;
      return step("adopted");
    }
    if (ack.recovered === false || epoch !== this.epoch) {
      this.epoch = epoch;
      this.seq = seq;
      return step("resync", [], { epoch, seq });
    }
    if (seq > this.seq) this.seq = seq;
    return step("recovered");
  }

  /** Forget the position (after leaving the room). */
  reset() {
    this.epoch = null;
    this.seq = 0;
  }

  _follows(envelope, seq) {
    if (seq === this.seq + 1) return true;
    const skipped = envelope.skipped;
    return typeof skipped === "number" && skipped > 0 && seq === this.seq + 1 + skipped;
  }
}

function step(decision, deliver = [], resync = null, rejoin = null) {
  return { decision, deliver, resync, rejoin };
}
