// Small canvas charts: bars per day (usage) and a line of recent rates (firehose). Colours
// come from the stylesheet's custom properties, so dark mode applies.

function prepare(canvas) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || canvas.width;
  const height = canvas.clientHeight || canvas.height;
  if (canvas.width !== Math.round(width * ratio)) {
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
  }
  const context = canvas.getContext("2d");
  context.setTransform(ratio, 0, 0, ratio, 0, 0);
  context.clearRect(0, 0, width, height);
  const style = getComputedStyle(canvas);
  const colour = (name, fallback) => style.getPropertyValue(name).trim() || fallback;
  return { context, width, height, colour };
}

/// Bars for `series` (arrays of numbers, drawn side by side per label) with the labels under
/// every seventh bar.
export function bars(canvas, labels, series, colours) {
  const { context, width, height, colour } = prepare(canvas);
  const bottom = height - 18;
  const max = Math.max(1, ...series.flat());
  const slot = width / Math.max(1, labels.length);
  const bar = Math.max(1, (slot - 2) / series.length);
  series.forEach((values, index) => {
    context.fillStyle = colour(colours[index], "#888");
    values.forEach((value, day) => {
      const h = (value / max) * (bottom - 4);
      context.fillRect(day * slot + 1 + index * bar, bottom - h, bar - 1, h);
    });
  });
  context.fillStyle = colour("--muted", "#666");
  context.font = "11px system-ui, sans-serif";
  labels.forEach((label, day) => {
    if (day % 7 === 0 || day === labels.length - 1) context.fillText(label, day * slot, height - 4);
  });
  context.fillText(max.toLocaleString("en-US"), 2, 11);
}

/// A line of `values` (oldest first) scaled to the largest.
export function line(canvas, values) {
  const { context, width, height, colour } = prepare(canvas);
  const max = Math.max(1, ...values);
  const step = width / Math.max(1, values.length - 1);
  context.strokeStyle = colour("--accent", "#0b5cad");
  context.lineWidth = 1.5;
  context.beginPath();
  values.forEach((value, index) => {
    const y = height - 2 - (value / max) * (height - 14);
    if (index === 0) context.moveTo(0, y);
    else context.lineTo(index * step, y);
  });
  context.stroke();
  context.fillStyle = colour("--muted", "#666");
  context.font = "10px system-ui, sans-serif";
  context.fillText(`${max}/s`, 2, 10);
}
