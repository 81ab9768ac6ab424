// The annotation canvas: draws the image, the boxes, their leases and the model's
// detections, and turns mouse gestures into intents (create, select, move, resize).
// It holds no protocol state: the workspace (demo.js) decides what an intent does.

import { WIDTH, HEIGHT, drawScene, colourFor } from "./scene.js";

const HANDLE = 7;
const MIN_SIZE = 6;

export class AnnotationCanvas {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {object} model  {boxes(): [{id, shape, label, holder, mine, status}], selected(): id|null,
   *   detections(): [{label, score, bbox}], showDetections(): bool}
   * @param {object} intents  {create(shape), select(id), deselect(), commit(id, shape)}
   */
  constructor(canvas, model, intents) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.model = model;
    this.intents = intents;
    canvas.width = WIDTH;
    canvas.height = HEIGHT;
    this.background = document.createElement("canvas");
    this.background.width = WIDTH;
    this.background.height = HEIGHT;
    drawScene(this.background.getContext("2d"));
    this.gesture = null; // {kind: "draw"|"move"|"resize", id, start, shape, corner}
    this.preview = null; // id -> shape while a gesture is under way
    canvas.addEventListener("mousedown", (e) => this._down(e));
    window.addEventListener("mousemove", (e) => this._move(e));
    window.addEventListener("mouseup", (e) => this._up(e));
    this._scheduled = false;
  }

  /** Redraw on the next animation frame (many events may ask within one frame). */
  draw() {
    if (this._scheduled) return;
    this._scheduled = true;
    requestAnimationFrame(() => {
      this._scheduled = false;
      this._paint();
    });
  }

  _point(e) {
    const rect = this.canvas.getBoundingClientRect();
    return {
      x: Math.max(0, Math.min(WIDTH, ((e.clientX - rect.left) * WIDTH) / rect.width)),
      y: Math.max(0, Math.min(HEIGHT, ((e.clientY - rect.top) * HEIGHT) / rect.height)),
    };
  }

  _hit(p) {
    const selected = this.model.selected();
    const boxes = this.model.boxes();
    if (selected) {
      const box = boxes.find((b) => b.id === selected);
      const corner = box && box.mine ? cornerAt(box.shape, p) : null;
      if (corner) return { id: selected, corner };
    }
    for (let i = boxes.length - 1; i >= 0; i--) {
      const { shape } = boxes[i];
      if (p.x >= shape.x && p.x <= shape.x + shape.w && p.y >= shape.y && p.y <= shape.y + shape.h) {
        return { id: boxes[i].id, corner: null };
      }
    }
    return null;
  }

  _down(e) {
    if (e.button !== 0) return;
    e.preventDefault();
    const p = this._point(e);
    const hit = this._hit(p);
    if (!hit) {
      this.intents.deselect();
      this.gesture = { kind: "draw", start: p, shape: { type: "bbox", x: p.x, y: p.y, w: 0, h: 0 } };
      return;
    }
    const box = this.model.boxes().find((b) => b.id === hit.id);
    this.intents.select(hit.id);
    if (box.holder && !box.mine) return; // someone else's lease: look, don't touch
    this.gesture = { kind: hit.corner ? "resize" : "move", id: hit.id, start: p, corner: hit.corner,
      origin: { ...box.shape }, shape: { ...box.shape } };
  }

  _move(e) {
    const g = this.gesture;
    if (!g) return;
    const p = this._point(e);
    const dx = p.x - g.start.x;
    const dy = p.y - g.start.y;
    if (g.kind === "draw") {
      g.shape = normalise({ type: "bbox", x: g.start.x, y: g.start.y, w: dx, h: dy });
    } else if (g.kind === "move") {
      g.shape = { ...g.origin, x: clamp(g.origin.x + dx, 0, WIDTH - g.origin.w),
        y: clamp(g.origin.y + dy, 0, HEIGHT - g.origin.h) };
    } else {
      const o = g.origin;
      let [x1, y1, x2, y2] = [o.x, o.y, o.x + o.w, o.y + o.h];
      if (g.corner.includes("w")) x1 += dx;
      if (g.corner.includes("e")) x2 += dx;
      if (g.corner.includes("n")) y1 += dy;
      if (g.corner.includes("s")) y2 += dy;
      g.shape = normalise({ type: "bbox", x: x1, y: y1, w: x2 - x1, h: y2 - y1 });
    }
    this.draw();
  }

  _up() {
    const g = this.gesture;
    this.gesture = null;
    if (!g) return;
    const shape = roundShape(g.shape);
    if (g.kind === "draw") {
      if (shape.w >= MIN_SIZE && shape.h >= MIN_SIZE) this.intents.create(shape);
    } else if (shape.x !== g.origin.x || shape.y !== g.origin.y || shape.w !== g.origin.w || shape.h !== g.origin.h) {
      this.intents.commit(g.id, shape, g.origin);
    }
    this.draw();
  }

  _paint() {
    const ctx = this.ctx;
    ctx.drawImage(this.background, 0, 0);
    const selected = this.model.selected();
    for (const box of this.model.boxes()) {
      const g = this.gesture;
      const shape = g && g.id === box.id && g.kind !== "draw" ? g.shape : box.shape;
      paintBox(ctx, box, shape, box.id === selected);
    }
    if (this.gesture && this.gesture.kind === "draw") {
      const s = this.gesture.shape;
      ctx.setLineDash([5, 4]);
      ctx.strokeStyle = "#ffffff";
      ctx.lineWidth = 2;
      ctx.strokeRect(s.x, s.y, s.w, s.h);
      ctx.setLineDash([]);
    }
    if (this.model.showDetections()) {
      for (const d of this.model.detections()) paintDetection(ctx, d);
    }
  }
}

function paintBox(ctx, box, s, selected) {
  const colour = colourFor(box.author || "?");
  ctx.fillStyle = hexAlpha(colour, 0.18);
  ctx.fillRect(s.x, s.y, s.w, s.h);
  ctx.lineWidth = selected ? 3 : 2;
  ctx.strokeStyle = colour;
  ctx.strokeRect(s.x, s.y, s.w, s.h);
  let tag = box.label || "(no label)";
  if (box.status === "accepted") tag += " ✓";
  else if (box.status === "needs_review") tag += " ?";
  if (box.holder) tag += ` · ${box.mine ? "your lease" : `${box.holder.name || box.holder.user_id} editing`}`;
  ctx.font = "12px system-ui, sans-serif";
  const width = ctx.measureText(tag).width + 8;
  const ty = s.y >= 16 ? s.y - 16 : s.y + s.h;
  ctx.fillStyle = box.holder ? colourFor(box.holder.user_id) : colour;
  ctx.fillRect(s.x, ty, width, 16);
  ctx.fillStyle = "#fff";
  ctx.fillText(tag, s.x + 4, ty + 12);
  if (box.holder) {
    ctx.setLineDash([6, 3]);
    ctx.lineWidth = 2;
    ctx.strokeStyle = colourFor(box.holder.user_id);
    ctx.strokeRect(s.x - 3, s.y - 3, s.w + 6, s.h + 6);
    ctx.setLineDash([]);
  }
  if (selected && box.mine) {
    ctx.fillStyle = "#fff";
    ctx.strokeStyle = colour;
    ctx.lineWidth = 1.5;
    for (const [cx, cy] of corners(s)) {
      ctx.fillRect(cx - HANDLE / 2, cy - HANDLE / 2, HANDLE, HANDLE);
      ctx.strokeRect(cx - HANDLE / 2, cy - HANDLE / 2, HANDLE, HANDLE);
    }
  }
}

function paintDetection(ctx, d) {
  const [x, y, w, h] = d.bbox;
  ctx.setLineDash([4, 3]);
  ctx.lineWidth = 1.5;
  ctx.strokeStyle = "#00e5ff";
  ctx.strokeRect(x, y, w, h);
  ctx.setLineDash([]);
  ctx.font = "11px ui-monospace, monospace";
  ctx.fillStyle = "rgba(0, 60, 80, 0.75)";
  const text = `${d.label} ${Math.round(d.score * 100)}%`;
  ctx.fillRect(x, y + h, ctx.measureText(text).width + 6, 14);
  ctx.fillStyle = "#bff8ff";
  ctx.fillText(text, x + 3, y + h + 11);
}

function corners(s) {
  return [[s.x, s.y], [s.x + s.w, s.y], [s.x, s.y + s.h], [s.x + s.w, s.y + s.h]];
}

function cornerAt(s, p) {
  const names = ["nw", "ne", "sw", "se"];
  const list = corners(s);
  for (let i = 0; i < 4; i++) {
    if (Math.abs(p.x - list[i][0]) <= HANDLE && Math.abs(p.y - list[i][1]) <= HANDLE) return names[i];
  }
  return null;
}

function normalise(s) {
  const x = Math.min(s.x, s.x + s.w);
  const y = Math.min(s.y, s.y + s.h);
  return { type: "bbox", x, y, w: Math.abs(s.w), h: Math.abs(s.h) };
}

function roundShape(s) {
  return { type: "bbox", x: Math.round(s.x), y: Math.round(s.y), w: Math.round(s.w), h: Math.round(s.h) };
}

function clamp(v, lo, hi) {
  return Math.max(lo, Math.min(hi, v));
}

function hexAlpha(hex, alpha) {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${n >> 16}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`;
}
