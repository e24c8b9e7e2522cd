//! Small vector kernels (axpy, dot) compiled for several x86 ISA levels and picked at run time.
//!
//! Why: the crate is built for the baseline x86-64 target (SSE2) so binaries run anywhere, but
//! the sparse decode and gradient loops are pure streaming f32 arithmetic that runs 2-4x faster
//! with AVX2/AVX-512. [`multiversion!`] compiles one generic body under `avx512f`, `avx2` and the
//! baseline, and dispatches on `is_x86_feature_detected!` (a cached load after the first call).
//!
//! Bit-exactness across levels: Rust never fuses a multiply and an add into an FMA on its own,
//! and every reduction below spells out its summation order, so all three versions return the
//! same bits. The choice of ISA changes speed only, never results.

/// Defines `$vis fn $name(args) -> ret` that runs `$body` compiled for the best ISA level the CPU
/// has. `$body` must be an `#[inline(always)]` function so it is compiled inside each version.
/// Exported so that a plugin's own streaming loops get the same treatment (`husai_kernels::simd::multiversion!`).
#[macro_export]
#[doc(hidden)]
macro_rules! __husai_multiversion {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? => $body:path) => {
        $(#[$m])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                fn v4($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                #[target_feature(enable = "avx2")]
                fn v3($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the running CPU supports AVX-512F (checked on this line).
                    return unsafe { v4($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the running CPU supports AVX2 (checked on this line).
                    return unsafe { v3($($arg),*) };
                }
            }
            $body($($arg),*)
        }
    };
}
pub use crate::__husai_multiversion as multiversion;

#[inline(always)]
fn axpy_body(y: &mut [f32], a: f32, x: &[f32]) {
    for (yi, &xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}

#[inline(always)]
fn dot_body(a: &[f32], b: &[f32]) -> f32 {
    // Sixty-four independent partial sums (four AVX-512 registers, so four add chains in flight instead of one: a
    // single chain left the dot waiting on add latency), combined in a fixed tree.
    let mut acc = [0f32; 64];
    let (ca, cb) = (a.chunks_exact(64), b.chunks_exact(64));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..64 {
            acc[i] += x[i] * y[i];
        }
    }
    let (ca, cb) = (ra.chunks_exact(16), rb.chunks_exact(16));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..16 {
            acc[i] += x[i] * y[i];
        }
    }
    for w in [32, 16, 8, 4, 2, 1] {
        for i in 0..w {
            acc[i] += acc[i + w];
        }
    }
    let mut s = acc[0];
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

multiversion! {
    /// `y += a * x` over `min(y.len(), x.len())` elements.
    pub fn axpy(y: &mut [f32], a: f32, x: &[f32]) => axpy_body
}

#[inline(always)]
fn axpy2_body(y1: &mut [f32], a1: f32, x1: &[f32], y2: &mut [f32], a2: f32, x2: &[f32]) {
    let n = y1.len().min(x1.len()).min(y2.len()).min(x2.len());
    let (y1, x1, y2, x2) = (&mut y1[..n], &x1[..n], &mut y2[..n], &x2[..n]);
    for i in 0..n {
        y1[i] += a1 * x1[i];
        y2[i] += a2 * x2[i];
    }
}

multiversion! {
    /// `y1 += a1 * x1` and `y2 += a2 * x2` in one pass (over the shortest length); the same
    /// elementwise operations as two `axpy` calls, so the same bits.
    pub fn axpy2(y1: &mut [f32], a1: f32, x1: &[f32], y2: &mut [f32], a2: f32, x2: &[f32]) => axpy2_body
}

multiversion! {
    /// Dot product of `a` and `b` (over the shorter length), in a fixed summation order.
    pub fn dot(a: &[f32], b: &[f32]) -> f32 => dot_body
}

#[inline(always)]
fn gather_dots_body(out: &mut [f32], rows: &[u32], mat: &[f32], v: &[f32]) {
    let w = v.len();
    for (o, &r) in out.iter_mut().zip(rows) {
        *o = dot_body(&mat[r as usize * w..(r as usize + 1) * w], v);
    }
}

multiversion! {
    /// `out[s] = dot(mat[rows[s]], v)` for each listed row of `mat` (row-major, rows as wide as `v`), each with
    /// [`dot`]'s bits; one dispatch for all of them instead of one per row.
    pub fn gather_dots(out: &mut [f32], rows: &[u32], mat: &[f32], v: &[f32]) => gather_dots_body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispatched_kernels_equal_the_baseline_bit_for_bit() {
        let mut r = crate::rng::SplitMix64::new(4);
        for n in [0usize, 1, 15, 16, 17, 100, 512, 1000] {
            let a: Vec<f32> = (0..n).map(|_| r.normal() as f32).collect();
            let b: Vec<f32> = (0..n).map(|_| r.normal() as f32).collect();
            assert_eq!(dot(&a, &b).to_bits(), dot_body(&a, &b).to_bits(), "n {n}");
            if n > 0 {
                // Rows 0, 2 and 0 of a 3-row matrix whose row 2 is `a`.
                let mat: Vec<f32> = b.iter().chain(&a).chain(&a).copied().collect();
                let mut out = [0f32; 3];
                gather_dots(&mut out, &[0, 2, 0], &mat, &b);
                let want = [dot(&b, &b), dot(&a, &b), dot(&b, &b)];
                assert_eq!(out.map(f32::to_bits), want.map(f32::to_bits), "n {n}");
            }
            let want: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
            assert!((dot(&a, &b) as f64 - want).abs() < 1e-4 * (n as f64 + 1.0));
            let (mut y1, mut y2) = (b.clone(), b.clone());
            axpy(&mut y1, 0.7, &a);
            axpy_body(&mut y2, 0.7, &a);
            assert_eq!(y1, y2);
            let (mut p, mut q) = (b.clone(), a.clone());
            axpy2(&mut p, 0.7, &a, &mut q, -1.5, &b);
            let mut q2 = a.clone();
            axpy(&mut q2, -1.5, &b);
            assert_eq!((&p, &q), (&y1, &q2));
            assert!(
                y1.iter()
                    .zip(&a)
                    .zip(&b)
                    .all(|((y, x), z)| *y == z + 0.7 * x)
            );
        }
    }
}
