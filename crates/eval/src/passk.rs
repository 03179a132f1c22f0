//! The unbiased pass@k estimator of Chen et al. (2021), "Evaluating Large Language Models
//! Trained on Code": with `n` samples of which `c` pass,
//! `pass@k = 1 - C(n - c, k) / C(n, k)`, computed as the product
//! `1 - Π_{i = n-c+1}^{n} (1 - k / i)` (no large binomials).

/// pass@k for one problem, or `None` when `k` is 0 or larger than `n` (not estimable) or
/// `c > n`.
pub fn pass_at_k(n: usize, c: usize, k: usize) -> Option<f64> {
    if k == 0 || k > n || c > n {
        return None;
    }
    if n - c < k {
        return Some(1.0);
    }
    let mut prod = 1.0f64;
    for i in (n - c + 1)..=n {
        prod *= 1.0 - k as f64 / i as f64;
    }
    Some(1.0 - prod)
}

/// The mean pass@k over problems given as `(n, c)`; `None` if any problem has fewer than `k`
/// samples or there are no problems.
pub fn mean_pass_at_k(counts: &[(usize, usize)], k: usize) -> Option<f64> {
    if counts.is_empty() {
        return None;
    }
    let mut sum = 0.0;
    for &(n, c) in counts {
        sum += pass_at_k(n, c, k)?;
    }
    Some(sum / counts.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: Option<f64>, b: f64) {
        let a = a.expect("estimable");
        assert!((a - b).abs() < 1e-12, "{a} != {b}");
    }

    #[test]
    fn hand_values() {
        // pass@1 is the fraction of passing samples.
        close(pass_at_k(10, 3, 1), 0.3);
        close(pass_at_k(1, 1, 1), 1.0);
        close(pass_at_k(1, 0, 1), 0.0);
        // n = 5, c = 2, k = 2: 1 - C(3,2)/C(5,2) = 1 - 3/10.
        close(pass_at_k(5, 2, 2), 0.7);
        // n = 10, c = 1, k = 5: 1 - C(9,5)/C(10,5) = 1 - 126/252.
        close(pass_at_k(10, 1, 5), 0.5);
        // n = 200, c = 13, k = 10: 1 - C(187,10)/C(200,10).
        let exact = 1.0 - binom(187, 10) / binom(200, 10);
        close(pass_at_k(200, 13, 10), exact);
        // Fewer failures than k: every k-subset holds a pass.
        close(pass_at_k(10, 8, 3), 1.0);
        close(pass_at_k(4, 0, 4), 0.0);
    }

    #[test]
    fn not_estimable() {
        assert_eq!(pass_at_k(5, 1, 10), None);
        assert_eq!(pass_at_k(5, 1, 0), None);
        assert_eq!(pass_at_k(5, 6, 1), None);
        assert_eq!(mean_pass_at_k(&[(10, 1), (3, 0)], 5), None);
        assert_eq!(mean_pass_at_k(&[], 1), None);
        close(mean_pass_at_k(&[(10, 1), (10, 3)], 1), 0.2);
    }

    fn binom(n: u64, k: u64) -> f64 {
        (0..k).fold(1.0, |acc, i| acc * (n - i) as f64 / (i + 1) as f64)
    }
}
