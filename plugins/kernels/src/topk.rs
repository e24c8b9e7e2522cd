//! Per-row top-k selection after ReLU, and the sparse code it produces.
//!
//! Conventions (every caller relies on them):
//! - The value of latent `j` in a row is `relu(pre[j] + bias[j])`.
//! - Only strictly positive values are ever selected. If a row has fewer than `k` positive values,
//!   it keeps all of them and the remaining slots stay empty: `nnz(row) < k`. So L0 counts exactly
//!   the nonzero activations, and a zero never enters the decoder or the gradients (ReLU's
//!   derivative is 0 there anyway, as in PyTorch, where such slots hold a zero that contributes
//!   nothing).
//! - Ties are broken by the lower latent index, so the selection is a pure function of the values.
//!   Within a row, slots are ordered by decreasing value (ties by increasing index).
//! - NaN is never selected (every comparison with NaN is false).

/// A batch of sparse codes with at most `k` nonzeros per row (CSR with a fixed `k` slots per row).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SparseCode {
    pub(crate) k: usize,
    pub(crate) rows: usize,
    pub(crate) idx: Vec<u32>,
    pub(crate) val: Vec<f32>,
    pub(crate) nnz: Vec<u32>,
}

impl SparseCode {
    /// An empty code of `rows` rows with room for `k` nonzeros each.
    pub fn new(rows: usize, k: usize) -> Self {
        let mut c = Self::default();
        c.reset(rows, k);
        c
    }

    /// Resizes to `rows x k` and empties every row, reusing the allocation.
    pub fn reset(&mut self, rows: usize, k: usize) {
        self.k = k;
        self.rows = rows;
        self.idx.clear();
        self.idx.resize(rows * k, 0);
        self.val.clear();
        self.val.resize(rows * k, 0.0);
        self.nnz.clear();
        self.nnz.resize(rows, 0);
    }

    /// Slots per row.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The selected latents and their (positive) values for row `r`.
    pub fn row(&self, r: usize) -> (&[u32], &[f32]) {
        let n = self.nnz[r] as usize;
        let s = r * self.k;
        (&self.idx[s..s + n], &self.val[s..s + n])
    }

    /// Number of nonzeros in row `r`.
    pub fn nnz(&self, r: usize) -> usize {
        self.nnz[r] as usize
    }

    /// Total nonzeros over all rows.
    pub fn total_nnz(&self) -> usize {
        self.nnz.iter().map(|&n| n as usize).sum()
    }

    /// Mutable per-row-chunk access for parallel filling: yields `(idx, val, nnz)` chunks of
    /// `rows_per_chunk` rows (the tests build codes with it).
    #[cfg(test)]
    pub(crate) fn chunks_mut(
        &mut self,
        rows_per_chunk: usize,
    ) -> impl rayon::iter::IndexedParallelIterator<Item = ((&mut [u32], &mut [f32]), &mut [u32])>
    {
        use rayon::prelude::*;
        let k = self.k.max(1);
        self.idx
            .par_chunks_mut(rows_per_chunk * k)
            .zip(self.val.par_chunks_mut(rows_per_chunk * k))
            .zip(self.nnz.par_chunks_mut(rows_per_chunk))
    }
}

crate::simd::multiversion! {
    /// Selects the top `k` values of `relu(pre + bias)` in one row, among all latents or, when
    /// `candidates` is given, among those latents only (indices in increasing order, each
    /// `< pre.len()`). Writes them, in decreasing order, to `out_idx[..n]` / `out_val[..n]` and
    /// returns `n <= k` (only strictly positive values are kept).
    ///
    /// `out_idx` and `out_val` should have length >= k and `pre` and `bias` the same length;
    /// otherwise only the common length is scanned and at most `min(k, out lengths)` kept.
    /// Candidates outside the row are ignored.
    pub fn select_row(pre: &[f32], bias: &[f32], candidates: Option<&[u32]>, k: usize, out_idx: &mut [u32], out_val: &mut [f32]) -> usize => select_row_body
}

/// [`select_row`] without candidates, by a partial sort of packed keys: the same latents in the same slots, for
/// rows where many values can reach the top k.
///
/// Why a second way: [`select_row`] inserts every value that beats its running k-th best, which is cheap when
/// k ≪ `pre.len()` (few values ever beat it) but costs a binary search and a block move per value when k is a
/// sizeable fraction of the row (k/m = 1/8 in the transcoder-stress fits, where it was a quarter of the step).
/// Here each strictly positive value becomes one u64 key, `bits << 32 | !j` (a positive f32's bits order as its
/// value; `!j` puts the lower index first among equal values, as `select_row`'s ties do), and
/// `select_nth_unstable` plus a sort of the k kept replace the insertions. `keys` is scratch, reused between rows.
/// (Finding the k-th largest by bisection on the bits instead, 31 counting passes over the row, measured slower.)
pub fn select_row_by_keys(
    pre: &[f32],
    bias: &[f32],
    k: usize,
    keys: &mut Vec<u64>,
    out_idx: &mut [u32],
    out_val: &mut [f32],
) -> usize {
    let len = pre.len().min(bias.len());
    let k = k.min(out_idx.len()).min(out_val.len());
    keys.clear();
    if k == 0 {
        return 0;
    }
    // Branch-free compaction: every key is written, and the count moves on only past a kept one (about half of a
    // row is positive, so a branch here would be mispredicted on every other value).
    keys.resize(len, 0);
    let mut kept = 0;
    for (j, (&p, &b)) in pre[..len].iter().zip(&bias[..len]).enumerate() {
        let v = p + b;
        keys[kept] = ((v.to_bits() as u64) << 32) | u64::from(!(j as u32));
        // NaN and non-positive values are never selected (`v > 0.0` is false for them), as in `select_row`.
        kept += usize::from(v > 0.0);
    }
    keys.truncate(kept);
    let n = kept.min(k);
    if kept > n {
        keys.select_nth_unstable_by(n - 1, |a, b| b.cmp(a));
    }
    let kept = &mut keys[..n];
    kept.sort_unstable_by(|a, b| b.cmp(a));
    for ((key, i), v) in kept.iter().zip(out_idx.iter_mut()).zip(out_val.iter_mut()) {
        *i = !(*key as u32);
        *v = f32::from_bits((key >> 32) as u32);
    }
    n
}

/// Selects the top `k` values of `pre + bias` (no ReLU: negative values count) among the latents
/// `candidates` (increasing indices), in decreasing order, into `out_idx[..n]` / `out_val[..n]`;
/// returns `n = min(k, candidates in the row, output lengths)`. Ties keep the earlier index.
pub fn select_among(
    pre: &[f32],
    bias: &[f32],
    candidates: &[u32],
    k: usize,
    out_idx: &mut [u32],
    out_val: &mut [f32],
) -> usize {
    let len = pre.len().min(bias.len());
    let k = k.min(out_idx.len()).min(out_val.len());
    if k == 0 {
        return 0;
    }
    let mut best = Best {
        k,
        n: 0,
        threshold: f32::NEG_INFINITY,
        idx: out_idx,
        val: out_val,
    };
    for &j in candidates {
        let j = j as usize;
        if j >= len {
            continue;
        }
        let v = pre[j] + bias[j];
        if v > best.threshold || best.n < k {
            best.insert(j, v);
        }
    }
    best.n
}

/// Values scanned per block: a block is examined value by value only if one of its values beats
/// the current k-th best, which after the first blocks is rare, so most of a row costs one
/// vector compare per block.
const BLOCK: usize = 16;

/// The running best-k buffer of one row.
struct Best<'a> {
    k: usize,
    n: usize,
    /// Values must beat this: the current k-th best, or 0 while the buffer is not full. Strict
    /// `>` keeps the earlier index on ties because indices arrive in increasing order.
    threshold: f32,
    idx: &'a mut [u32],
    val: &'a mut [f32],
}

impl Best<'_> {
    /// Inserts `(j, v)`, known to beat the threshold, after every slot whose value is >= v; a
    /// full buffer drops its last slot. Binary search plus one block move: the buffer is sorted
    /// in decreasing order.
    #[inline(always)]
    fn insert(&mut self, j: usize, v: f32) {
        let end = self.n.min(self.k - 1);
        let pos = self.val[..end].partition_point(|&x| x >= v);
        self.val.copy_within(pos..end, pos + 1);
        self.idx.copy_within(pos..end, pos + 1);
        self.val[pos] = v;
        self.idx[pos] = j as u32;
        if self.n < self.k {
            self.n += 1;
        }
        if self.n == self.k {
            self.threshold = self.val[self.k - 1];
        }
    }
}

#[inline(always)]
fn select_row_body(
    pre: &[f32],
    bias: &[f32],
    candidates: Option<&[u32]>,
    k: usize,
    out_idx: &mut [u32],
    out_val: &mut [f32],
) -> usize {
    // Out-of-contract lengths shrink the problem instead of panicking: only the common length
    // of `pre`/`bias` is scanned and at most as many values as the output buffers hold are kept.
    let len = pre.len().min(bias.len());
    let (pre, bias) = (&pre[..len], &bias[..len]);
    let k = k.min(out_idx.len()).min(out_val.len());
    if k == 0 {
        return 0;
    }
    let mut best = Best {
        k,
        n: 0,
        threshold: 0.0,
        idx: out_idx,
        val: out_val,
    };
    if let Some(cands) = candidates {
        for &j in cands {
            let Some(v) = pre.get(j as usize).map(|p| p + bias[j as usize]) else {
                continue; // out-of-range candidate: not a latent of this row
            };
            if v > best.threshold {
                best.insert(j as usize, v);
            }
        }
        return best.n;
    }
    // A lower bound on the k-th largest value: split the row into k groups; each group's maximum
    // is a value >= the smallest of those maxima, so k values reach that bound and nothing below
    // it can be in the top k. Starting the threshold just under it skips most insertions while
    // every value >= the bound is still visited in index order, so the result is unchanged.
    if len >= 4 * k {
        let g = len / k;
        let mut bound = f32::INFINITY;
        for (p, b) in pre[..g * k]
            .chunks_exact(g)
            .zip(bias[..g * k].chunks_exact(g))
        {
            let m = p.iter().zip(b).fold(f32::NEG_INFINITY, |m, (&x, &y)| {
                let v = x + y;
                if v > m { v } else { m }
            });
            if m < bound {
                bound = m;
            }
        }
        if bound > 0.0 {
            // The next float below a positive bound (f32::next_down, written out for MSRV).
            best.threshold = f32::from_bits(bound.to_bits() - 1);
        }
    }
    let (pc, bc) = (pre.chunks_exact(BLOCK), bias.chunks_exact(BLOCK));
    let tail = pc.remainder().len();
    for (blk, (p, b)) in pc.zip(bc).enumerate() {
        let t = best.threshold;
        // One vector compare per block gives a bit mask of the values beating the threshold;
        // only those are visited (and re-checked, as the threshold rises while inserting).
        let mut hits = p
            .iter()
            .zip(b)
            .enumerate()
            .fold(0u32, |m, (i, (&x, &y))| m | (((x + y > t) as u32) << i));
        while hits != 0 {
            let i = hits.trailing_zeros() as usize;
            hits &= hits - 1;
            let v = p[i] + b[i];
            if v > best.threshold {
                best.insert(blk * BLOCK + i, v);
            }
        }
    }
    let start = pre.len() - tail;
    for (i, (&x, &y)) in pre[start..].iter().zip(&bias[start..]).enumerate() {
        let v = x + y;
        if v > best.threshold {
            best.insert(start + i, v);
        }
    }
    best.n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    fn reference(pre: &[f32], bias: &[f32], allowed: Option<&[u32]>, k: usize) -> Vec<(u32, f32)> {
        let mut all: Vec<(u32, f32)> = pre
            .iter()
            .zip(bias)
            .enumerate()
            .filter(|(j, _)| allowed.is_none_or(|m| m.contains(&(*j as u32))))
            .map(|(j, (p, b))| (j as u32, p + b))
            .filter(|(_, v)| *v > 0.0)
            .collect();
        all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        all.truncate(k);
        all
    }

    #[test]
    fn matches_sort_based_reference_including_ties_masks_and_short_rows() {
        let mut r = SplitMix64::new(11);
        for trial in 0..300 {
            let n = 1 + (trial % 97);
            // Coarse values (multiples of 0.25 in [-2, 2)) force many ties and many non-positives.
            let pre: Vec<f32> = (0..n).map(|_| (r.below(16) as f32 - 8.0) * 0.25).collect();
            let bias: Vec<f32> = (0..n)
                .map(|_| if r.below(4) == 0 { 0.25 } else { 0.0 })
                .collect();
            let mask: Vec<u32> = (0..n as u32).filter(|_| r.below(3) != 0).collect();
            for k in [1usize, 3, 8, 200] {
                for allowed in [None, Some(mask.as_slice())] {
                    let mut idx = vec![0u32; k];
                    let mut val = vec![0f32; k];
                    let got_n = select_row(&pre, &bias, allowed, k, &mut idx, &mut val);
                    let want = reference(&pre, &bias, allowed, k);
                    let got: Vec<(u32, f32)> = idx[..got_n]
                        .iter()
                        .copied()
                        .zip(val[..got_n].iter().copied())
                        .collect();
                    assert_eq!(got, want, "trial {trial} k {k}");
                }
            }
        }
    }

    #[test]
    fn selection_by_keys_gives_select_rows_latents_in_its_slots() {
        // Coarse values force ties (the lower index must come first) and many non-positives; a NaN now and then
        // must be skipped as select_row skips it; widths around and below k cover rows with fewer than k positives.
        let mut r = SplitMix64::new(23);
        let mut keys = Vec::new();
        for trial in 0..2000 {
            let n = 1 + (trial % 300);
            let pre: Vec<f32> = (0..n)
                .map(|_| match r.below(40) {
                    0 => f32::NAN,
                    1 => -0.0,
                    v => (v as f32 - 20.0) * 0.125,
                })
                .collect();
            let bias: Vec<f32> = (0..n)
                .map(|_| if r.below(5) == 0 { 0.125 } else { 0.0 })
                .collect();
            for k in [1usize, 4, 32, 64, 400] {
                let (mut i1, mut v1) = (vec![0u32; k], vec![0f32; k]);
                let (mut i2, mut v2) = (vec![7u32; k], vec![7f32; k]);
                let n1 = select_row(&pre, &bias, None, k, &mut i1, &mut v1);
                let n2 = select_row_by_keys(&pre, &bias, k, &mut keys, &mut i2, &mut v2);
                assert_eq!(n1, n2, "trial {trial} k {k}");
                assert_eq!(i1[..n1], i2[..n2], "trial {trial} k {k}");
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&v1[..n1]), bits(&v2[..n2]), "trial {trial} k {k}");
                assert_eq!(
                    i1[..n1],
                    reference(&pre, &bias, None, k)
                        .iter()
                        .map(|p| p.0)
                        .collect::<Vec<_>>()[..]
                );
            }
        }
        assert_eq!(
            select_row_by_keys(&[1.0], &[0.0], 0, &mut keys, &mut [], &mut []),
            0
        );
    }

    #[test]
    fn zero_k_selects_nothing_and_nan_is_skipped() {
        let mut idx = [0u32; 2];
        let mut val = [0f32; 2];
        // Out-of-contract arguments shrink the problem rather than panic.
        assert_eq!(
            select_row(
                &[1.0, 2.0, 3.0],
                &[0.0; 2],
                Some(&[0, 1, 9]),
                5,
                &mut idx,
                &mut val
            ),
            2
        );
        assert_eq!((idx, val), ([1, 0], [2.0, 1.0]));
        assert_eq!(
            select_row(&[1.0, 2.0], &[0.0, 0.0], None, 0, &mut idx, &mut val),
            0
        );
        let n = select_row(
            &[f32::NAN, 0.5, 0.0],
            &[0.0; 3],
            None,
            2,
            &mut idx,
            &mut val,
        );
        assert_eq!((n, idx[0], val[0]), (1, 1, 0.5));
    }

    #[test]
    fn sparse_code_rows_report_only_nonzeros() {
        let mut c = SparseCode::new(2, 3);
        {
            use rayon::prelude::*;
            c.chunks_mut(1)
                .enumerate()
                .for_each(|(r, ((idx, val), nnz))| {
                    nnz[0] = select_row(&[0.3, -1.0, 0.9], &[0.0; 3], None, 3, idx, val) as u32
                        - r as u32;
                });
        }
        assert_eq!(c.row(0), (&[2u32, 0][..], &[0.9f32, 0.3][..]));
        assert_eq!(c.row(1), (&[2u32][..], &[0.9f32][..]));
        assert_eq!(c.total_nnz(), 3);
    }

    #[test]
    fn select_among_keeps_negative_values_and_only_candidates() {
        let pre = [0.5f32, -2.0, -0.5, 3.0, -1.0];
        let bias = [0.0f32; 5];
        let (mut idx, mut val) = ([0u32; 3], [0f32; 3]);
        let n = select_among(&pre, &bias, &[1, 2, 4, 9], 3, &mut idx, &mut val);
        assert_eq!((n, idx, val), (3, [2, 4, 1], [-0.5, -1.0, -2.0]));
        let n = select_among(&pre, &bias, &[1, 3], 3, &mut idx, &mut val);
        assert_eq!(
            (n, &idx[..2], &val[..2]),
            (2, &[3u32, 1][..], &[3.0f32, -2.0][..])
        );
        assert_eq!(select_among(&pre, &bias, &[0], 0, &mut idx, &mut val), 0);
    }
}
