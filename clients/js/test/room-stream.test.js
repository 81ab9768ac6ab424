// RoomStream: duplicates, gaps (held, then filled by a rejoin), skipped, epoch changes,
// join acks. Pure, no I/O.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { RoomStream } from "../roomcast-client.js";

const ev = (seq, extra = {}) => ({ room: "annotation_1", epoch: "e1", seq, type: "annotation_update", ...extra });
const seqs = (step) => step.deliver.map((e) => e.seq);

describe("RoomStream", () => {
  test("without a position, the first event is delivered and its position adopted", () => {
    const stream = new RoomStream("annotation_1");
    assert.equal(stream.position, null);
    const step = stream.offer(ev(7));
    assert.equal(step.decision, "deliver");
    assert.deepEqual(seqs(step), [7]);
    assert.equal(step.resync, null);
    assert.deepEqual(stream.position, { epoch: "e1", seq: 7 });
  });

  test("in-order events are delivered; replays of them are duplicates", () => {
    const stream = new RoomStream("annotation_1", { epoch: "e1", seq: 3 });
    assert.deepEqual(seqs(stream.offer(ev(4))), [4]);
    assert.deepEqual(seqs(stream.offer(ev(5))), [5]);
    for (const seq of [1, 3, 4, 5]) {
      const step = stream.offer(ev(seq));
      assert.equal(step.decision, "duplicate");
      assert.deepEqual(step.deliver, []);
    }
    assert.deepEqual(stream.position, { epoch: "e1", seq: 5 });
  });

  test("a skipped notice moves past the skipped events and releases what follows", () => {
    const stream = new RoomStream("detection_stream_1", { epoch: "e1", seq: 8 });
    assert.equal(stream.offer(ev(31)).decision, "gap");
    const step = stream.skippedTo({ room: "detection_stream_1", skipped: 22, seq: 30 });
    assert.equal(step.decision, "deliver");
    assert.deepEqual(seqs(step), [31]);
    assert.deepEqual(stream.position, { epoch: "e1", seq: 31 });
    assert.equal(stream.skippedTo({ room: "detection_stream_1", skipped: 1, seq: 30 }).decision, "duplicate");
  });

  test("a skipped notice that does not meet the position is a gap", () => {
    const stream = new RoomStream("detection_stream_1", { epoch: "e1", seq: 8 });
    const step = stream.skippedTo({ room: "detection_stream_1", skipped: 3, seq: 30 });
    assert.equal(step.decision, "gap");
    assert.deepEqual(step.rejoin, { epoch: "e1", seq: 8 });
    assert.deepEqual(stream.position, { epoch: "e1", seq: 8 });
  });

  test("a gap holds later events and asks for a rejoin from the last position", () => {
    const stream = new RoomStream("annotation_1", { epoch: "e1", seq: 3 });
    const step = stream.offer(ev(6));
    assert.equal(step.decision, "gap");
    assert.deepEqual(step.deliver, []);
    assert.deepEqual(step.rejoin, { epoch: "e1", seq: 3 });
    assert.equal(stream.offer(ev(7)).decision, "gap");
    assert.equal(stream.offer(ev(6)).decision, "duplicate"); // already held
    assert.equal(stream.held, 2);
    assert.deepEqual(stream.position, { epoch: "e1", seq: 3 });
    // The replay fills the gap: the held events follow, once each.
    assert.deepEqual(seqs(stream.offer(ev(4))), [4]);
    assert.deepEqual(seqs(stream.offer(ev(5))), [5, 6, 7]);
    assert.equal(stream.offer(ev(6)).decision, "duplicate");
    assert.equal(stream.held, 0);
    const ack = stream.joined({ epoch: "e1", seq: 7, recovered: true });
    assert.equal(ack.decision, "recovered");
    assert.deepEqual(ack.deliver, []);
    assert.equal(ack.rejoin, null);
    assert.deepEqual(stream.position, { epoch: "e1", seq: 7 });
  });

  test("a join ack releases held events that now follow and drops those behind", () => {
    const stream = new RoomStream("annotation_1", { epoch: "e1", seq: 3 });
    stream.offer(ev(5));
    stream.offer(ev(8));
    const step = stream.joined({ epoch: "e1", seq: 6, recovered: true });
    // ack.seq 6 > 3 is adopted; 5 is behind it (dropped), 8 still misses 7.
    assert.deepEqual(step.deliver, []);
    assert.deepEqual(step.rejoin, { epoch: "e1", seq: 6 });
    assert.deepEqual(seqs(stream.offer(ev(7))), [7, 8]);
  });

  test("a gap the server never fills ends in a resync after a few fruitless rejoins", () => {
    const stream = new RoomStream("annotation_1", { epoch: "e1", seq: 3 });
    stream.offer(ev(9));
    let step;
    for (let i = 0; i < 3; i += 1) step = stream.joined({ epoch: "e1", seq: 3, recovered: true });
    assert.equal(step.decision, "resync");
    assert.deepEqual(step.resync, { epoch: "e1", seq: 9 });
    assert.deepEqual(seqs(step), [9]);
    assert.equal(step.rejoin, null);
  });

  test("`skipped` marks a jump: seq == last + 1 + skipped is delivered", () => {
    const stream = new RoomStream("detection_stream_t", { epoch: "e1", seq: 10 });
    const step = stream.offer(ev(14, { skipped: 3 }));
    assert.equal(step.decision, "deliver");
    assert.deepEqual(seqs(step), [14]);
    assert.equal(stream.offer(ev(15)).decision, "deliver");
    // A skipped count that does not explain the jump is still a gap.
    assert.equal(stream.offer(ev(20, { skipped: 2 })).decision, "gap");
    // A held event whose skipped count explains the jump is released by the fill.
    const held = new RoomStream("detection_stream_t", { epoch: "e1", seq: 1 });
    assert.equal(held.offer(ev(6, { skipped: 2 })).decision, "gap");
    assert.deepEqual(seqs(held.offer(ev(2))), [2]);
    assert.deepEqual(seqs(held.offer(ev(3))), [3, 6]);
  });

  test("a new epoch is delivered with a resync to its position", () => {
    const stream = new RoomStream("annotation_1", { epoch: "e1", seq: 40 });
    stream.offer(ev(43)); // held in e1, lost with it
    const step = stream.offer(ev(1, { epoch: "e2" }));
    assert.equal(step.decision, "resync");
    assert.deepEqual(step.resync, { epoch: "e2", seq: 1 });
    assert.deepEqual(seqs(step), [1]);
    assert.equal(stream.held, 0);
    assert.deepEqual(stream.position, { epoch: "e2", seq: 1 });
    assert.deepEqual(seqs(stream.offer(ev(2, { epoch: "e2" }))), [2]);
  });

  test("a join ack without a position is adopted, without resync", () => {
    const stream = new RoomStream("annotation_1");
    const step = stream.joined({ epoch: "e1", seq: 12, recovered: true });
    assert.equal(step.decision, "adopted");
    assert.equal(step.resync, null);
    assert.deepEqual(stream.position, { epoch: "e1", seq: 12 });
    assert.equal(stream.offer(ev(12)).decision, "duplicate");
    assert.deepEqual(seqs(stream.offer(ev(13))), [13]);
  });

  test("recovered:false resyncs to the ack's position, even in the same epoch", () => {
    const stream = new RoomStream("annotation_1", { epoch: "e1", seq: 5 });
    const step = stream.joined({ epoch: "e9", seq: 30, recovered: false });
    assert.equal(step.decision, "resync");
    assert.deepEqual(step.resync, { epoch: "e9", seq: 30 });
    assert.deepEqual(stream.position, { epoch: "e9", seq: 30 });

    const same = new RoomStream("annotation_1", { epoch: "e1", seq: 5 });
    const truncated = same.joined({ epoch: "e1", seq: 2000, recovered: false });
    assert.deepEqual(truncated.resync, { epoch: "e1", seq: 2000 });
    assert.deepEqual(same.position, { epoch: "e1", seq: 2000 });
  });

  test("a recovered ack only moves the position forward", () => {
    const stream = new RoomStream("annotation_1", { epoch: "e1", seq: 9 });
    assert.equal(stream.joined({ epoch: "e1", seq: 4, recovered: true }).resync, null);
    assert.deepEqual(stream.position, { epoch: "e1", seq: 9 });
    stream.joined({ epoch: "e1", seq: 11, recovered: true });
    assert.deepEqual(stream.position, { epoch: "e1", seq: 11 });
  });

  test("reset forgets the position", () => {
    const stream = new RoomStream("annotation_1", { epoch: "e1", seq: 9 });
    stream.offer(ev(12));
    stream.reset();
    assert.equal(stream.position, null);
    assert.equal(stream.held, 0);
  });
});
