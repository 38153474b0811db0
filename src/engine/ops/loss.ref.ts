// float64 CPU reference of the softmax cross-entropy for one point.

/** One point: logits [N, C], labels [N] -> mean cross-entropy and accuracy (first maximal index wins). */
export function crossEntropyRef(
  logits: ArrayLike<number>,
  labels: ArrayLike<number>,
  N: number,
  C: number,
): { loss: number; acc: number } {
  let loss = 0,
    correct = 0;
  for (let n = 0; n < N; n++) {
    let mx = -Infinity,
      am = 0;
    for (let c = 0; c < C; c++)
      if (logits[n * C + c] > mx) {
        mx = logits[n * C + c];
        am = c;
      }
    let se = 0;
    for (let c = 0; c < C; c++) se += Math.exp(logits[n * C + c] - mx);
    loss += Math.log(se) + mx - logits[n * C + labels[n]];
    if (am === labels[n]) correct++;
  }
  return { loss: loss / N, acc: correct / N };
}
