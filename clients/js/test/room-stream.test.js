// RoomStream: duplicates, gaps (dropped, then filled by a rejoin's replay), skipped,
// epoch changes, join acks. Pure, no I/O.
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

  test("a skipped notice moves past the skipped events; the next event follows it", () => {
    const stream = new RoomStream("detection_stream_1", { epoch: "e1", seq: 8 });
    assert.equal(stream.offer(ev(31)).decision, "gap"); // dropped: the rejoin replays it
    const step = stream.skippedTo({ room: "detection_stream_1", skipped: 22, seq: 30 });
    assert.equal(step.decision, "deliver");
    assert.deepEqual(step.deliver, []);
    assert.equal(step.rejoin, null);
    assert.deepEqual(stream.position, { epoch: "e1", seq: 30 });
    assert.deepEqual(seqs(stream.offer(ev(31))), [31]);
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

  test("a gap drops later events and asks for a rejoin from the last position", () => {
    const stream = new RoomStream("annotation_1", { epoch: "e1", seq: 3 });
    const step = stream.offer(ev(6));
    assert.equal(step.decision, "gap");
    assert.deepEqual(step.deliver, []);
    assert.deepEqual(step.rejoin, { epoch: "e1", seq: 3 });
    assert.equal(stream.offer(ev(7)).decision, "gap");
    assert.equal(stream.offer(ev(6)).decision, "gap"); // nothing held: still missing 4
    assert.deepEqual(stream.position, { epoch: "e1", seq: 3 });
    // The rejoin's replay brings everything after the position, in order, once each.
    for (const seq of [4, 5, 6, 7]) assert.deepEqual(seqs(stream.offer(ev(seq))), [seq]);
    assert.equal(stream.offer(ev(6)).decision, "duplicate");
    const ack = stream.joined({ epoch: "e1", seq: 7, recovered: true });
    assert.equal(ack.decision, "recovered");
    assert.deepEqual(ack.deliver, []);
    assert.equal(ack.rejoin, null);
    assert.deepEqual(stream.position, { epoch: "e1", seq: 7 });
  });

  test("a join ack after a gap delivers nothing and asks for no further rejoin", () => {
    const stream = new RoomStream("annotation_1", { epoch: "e1", seq: 3 });
    stream.offer(ev(5));
    stream.offer(ev(8));
    const step = stream.joined({ epoch: "e1", seq: 6, recovered: true });
    // ack.seq 6 > 3 is adopted; the dropped 5 is behind it, 8 will be sent again.
    assert.equal(step.decision, "recovered");
    assert.deepEqual(step.deliver, []);
    assert.equal(step.rejoin, null);
    assert.deepEqual(stream.position, { epoch: "e1", seq: 6 });
    assert.equal(stream.offer(ev(5)).decision, "duplicate");
    assert.deepEqual(seqs(stream.offer(ev(7))), [7]);
    assert.deepEqual(seqs(stream.offer(ev(8))), [8]);
  });

  test("a gap the history no longer covers ends in the server's resync", () => {
    const stream = new RoomStream("annotation_1", { epoch: "e1", seq: 3 });
    assert.equal(stream.offer(ev(900)).decision, "gap");
    const step = stream.joined({ epoch: "e1", seq: 900, recovered: false });
    assert.equal(step.decision, "resync");
    assert.deepEqual(step.resync, { epoch: "e1", seq: 900 });
    assert.deepEqual(step.deliver, []);
    assert.equal(step.rejoin, null);
    assert.equal(stream.offer(ev(900)).decision, "duplicate");
  });

  test("`skipped` marks a jump: seq == last + 1 + skipped is delivered", () => {
    const stream = new RoomStream("detection_stream_t", { epoch: "e1", seq: 10 });
    const step = stream.offer(ev(14, { skipped: 3 }));
    assert.equal(step.decision, "deliver");
    assert.deepEqual(seqs(step), [14]);
    assert.equal(stream.offer(ev(15)).decision, "deliver");
    // A skipped count that does not explain the jump is still a gap.
    assert.equal(stream.offer(ev(20, { skipped: 2 })).decision, "gap");
    // Replayed after the fill, an event whose skipped count explains the jump follows.
    const filled = new RoomStream("detection_stream_t", { epoch: "e1", seq: 1 });
    assert.equal(filled.offer(ev(6, { skipped: 2 })).decision, "gap");
    assert.deepEqual(seqs(filled.offer(ev(2))), [2]);
    assert.deepEqual(seqs(filled.offer(ev(3))), [3]);
    assert.deepEqual(seqs(filled.offer(ev(6, { skipped: 2 }))), [6]);
  });

  test("a new epoch is delivered with a resync to its position", () => {
    const stream = new RoomStream("annotation_1", { epoch: "e1", seq: 40 });
    assert.equal(stream.offer(ev(43)).decision, "gap"); // in e1, lost with it
    const step = stream.offer(ev(1, { epoch: "e2" }));
    assert.equal(step.decision, "resync");
    assert.deepEqual(step.resync, { epoch: "e2", seq: 1 });
    assert.deepEqual(seqs(step), [1]);
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
  });
});
