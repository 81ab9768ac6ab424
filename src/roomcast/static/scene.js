// The image under annotation, drawn by the page itself (nothing is downloaded), and
// the colour that stands for a user everywhere on the page.

export const WIDTH = 640;
export const HEIGHT = 400;

/** A street scene: sky, buildings, road, a few cars and people worth boxing. */
export function drawScene(ctx) {
  const sky = ctx.createLinearGradient(0, 0, 0, 220);
  sky.addColorStop(0, "#8ec5ff");
  sky.addColorStop(1, "#dbeeff");
  ctx.fillStyle = sky;
  ctx.fillRect(0, 0, WIDTH, HEIGHT);
  const buildings = [[10, 60, 90, 170], [110, 95, 70, 135], [190, 40, 110, 190], [310, 80, 80, 150],
    [400, 30, 100, 200], [510, 70, 120, 160]];
  buildings.forEach(([x, y, w, h], i) => {
    ctx.fillStyle = ["#6b7a8f", "#8a94a6", "#5d6b7e", "#9aa3b5", "#707d91", "#838da0"][i];
    ctx.fillRect(x, y, w, h);
    ctx.fillStyle = "rgba(255, 244, 190, 0.75)";
    for (let wy = y + 12; wy < y + h - 20; wy += 22) {
      for (let wx = x + 10; wx < x + w - 14; wx += 20) ctx.fillRect(wx, wy, 9, 12);
    }
  });
  ctx.fillStyle = "#4b4f56";
  ctx.fillRect(0, 230, WIDTH, 170);
  ctx.fillStyle = "#9da3ab";
  ctx.fillRect(0, 222, WIDTH, 10);
  ctx.fillStyle = "#f4f1de";
  for (let x = 10; x < WIDTH; x += 70) ctx.fillRect(x, 312, 40, 6);
  const cars = [[60, 255, "#d64545"], [250, 330, "#2f7ed8"], [450, 262, "#f2b134"]];
  for (const [x, y, colour] of cars) drawCar(ctx, x, y, colour);
  const people = [[200, 176, "#3a3a3a"], [372, 170, "#7a3e9d"], [585, 178, "#1f7a5a"]];
  for (const [x, y, colour] of people) drawPerson(ctx, x, y, colour);
}

function drawCar(ctx, x, y, colour) {
  ctx.fillStyle = colour;
  ctx.beginPath();
  ctx.roundRect(x, y + 14, 110, 30, 8);
  ctx.roundRect(x + 22, y, 62, 22, 8);
  ctx.fill();
  ctx.fillStyle = "#cfe8ff";
  ctx.fillRect(x + 30, y + 5, 20, 12);
  ctx.fillRect(x + 56, y + 5, 20, 12);
  ctx.fillStyle = "#1d1d1d";
  for (const wx of [x + 24, x + 86]) {
    ctx.beginPath();
    ctx.arc(wx, y + 45, 10, 0, Math.PI * 2);
    ctx.fill();
  }
}

function drawPerson(ctx, x, y, colour) {
  ctx.fillStyle = "#f0c9a0";
  ctx.beginPath();
  ctx.arc(x, y, 8, 0, Math.PI * 2);
  ctx.fill();
  ctx.fillStyle = colour;
  ctx.fillRect(x - 8, y + 9, 16, 28);
  ctx.fillRect(x - 7, y + 37, 6, 18);
  ctx.fillRect(x + 1, y + 37, 6, 18);
}

const PALETTE = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#008080", "#f032e6", "#9a6324"];

/** A stable colour for a user id. */
export function colourFor(userId) {
  let hash = 0;
  for (const ch of String(userId)) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  return PALETTE[hash % PALETTE.length];
}

/** Up to two initials of a display name. */
export function initials(name) {
  const parts = String(name || "?").trim().split(/\s+/);
  return parts.slice(0, 2).map((p) => p[0].toUpperCase()).join("") || "?";
}
