//! The one dense solver the trainers share (learned router's transfer head, cascade scorer's
//! Newton steps): small symmetric positive-definite systems, a few dozen unknowns.

/// Solves `a x = b` for a symmetric positive-definite `a` by Cholesky, in place: `b` becomes `x`
/// and `a`'s lower triangle its factor. `false` (and `b` unspecified) when `a` is not
/// numerically positive definite.
#[expect(
    clippy::needless_range_loop,
    reason = "dense matrix algebra reads clearer with indices"
)]
pub(crate) fn cholesky_solve(a: &mut [Vec<f64>], b: &mut [f64]) -> bool {
    let n = b.len();
    for j in 0..n {
        let mut d = a[j][j];
        for k in 0..j {
            d -= a[j][k] * a[j][k];
        }
        if !(d > 1e-12 && d.is_finite()) {
            return false;
        }
        let d = d.sqrt();
        a[j][j] = d;
        for i in j + 1..n {
            let mut s = a[i][j];
            for k in 0..j {
                s -= a[i][k] * a[j][k];
            }
            a[i][j] = s / d;
        }
    }
    for i in 0..n {
        let mut s = b[i];
        for k in 0..i {
            s -= a[i][k] * b[k];
        }
        b[i] = s / a[i][i];
    }
    for i in (0..n).rev() {
        let mut s = b[i];
        for k in i + 1..n {
            s -= a[k][i] * b[k];
        }
        b[i] = s / a[i][i];
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solves_spd_and_refuses_singular() {
        let mut a = vec![vec![4.0, 2.0], vec![2.0, 3.0]];
        let mut b = vec![2.0, 5.0];
        assert!(cholesky_solve(&mut a, &mut b));
        // 4x + 2y = 2, 2x + 3y = 5 → x = -0.5, y = 2
        assert!(
            (b[0] + 0.5).abs() < 1e-12 && (b[1] - 2.0).abs() < 1e-12,
            "{b:?}"
        );
        let mut a = vec![vec![1.0, 1.0], vec![1.0, 1.0]];
        let mut b = vec![1.0, 1.0];
        assert!(!cholesky_solve(&mut a, &mut b));
    }
}
