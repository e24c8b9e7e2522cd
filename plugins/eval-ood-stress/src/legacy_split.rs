//! Upstream's automatic ID/OOD partition of probing datasets (reference `upstream-stress-evals.md` §2.3 step 2),
//! reproduced exactly, for reading and re-deriving upstream OOD evidence under `--parity`.
//!
//! A dataset's pseudo-domain is its name without a leading `^\d+_`, cut at the first `_`. The domains are sorted;
//! the alphabetically last `n_ood = clamp(round(n_domains · fraction), 1, n_domains − 1)` of them are OOD, with
//! Python's round-half-to-even (58 × 0.25 = 14.5 → 14, where `f64::round` gives 15: reference O6). Names keep their
//! order. With fewer than `min_ood` OOD names, the last `need` ID names move to the front of the OOD list; a
//! universe of one domain is split by index instead (the last `round(n · fraction)` names).

/// The partition of a universe of dataset names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub id: Vec<String>,
    pub ood: Vec<String>,
    /// The OOD pseudo-domains, sorted, or `["__index_split__"]`.
    pub ood_domains: Vec<String>,
}

/// The pseudo-domain of a dataset name.
pub fn pseudo_domain(name: &str) -> &str {
    let digits = name.bytes().take_while(u8::is_ascii_digit).count();
    let rest = if digits > 0 && name.as_bytes().get(digits) == Some(&b'_') {
        &name[digits + 1..]
    } else {
        name
    };
    rest.split('_').next().unwrap_or(rest)
}

/// Python 3's `round(x)`: to the nearest integer, ties to the even one.
pub fn round_half_even(x: f64) -> f64 {
    x.round_ties_even()
}

/// The partition upstream computes for `names` (in universe order) with `fraction` and `min_ood`.
pub fn split(names: &[String], fraction: f64, min_ood: usize) -> Result<Split, String> {
    let mut domains: Vec<&str> = names.iter().map(|n| pseudo_domain(n)).collect();
    domains.sort_unstable();
    domains.dedup();
    let (mut id, mut ood, ood_domains): (Vec<String>, Vec<String>, Vec<String>) = if domains.len()
        <= 1
    {
        let n_ood = round_half_even(names.len() as f64 * fraction) as usize;
        let cut = names.len().saturating_sub(n_ood);
        (
            names[..cut].to_vec(),
            names[cut..].to_vec(),
            vec!["__index_split__".into()],
        )
    } else {
        let n = domains.len();
        let n_ood = (round_half_even(n as f64 * fraction) as usize).clamp(1, n - 1);
        let ood_domains: Vec<String> = domains[n - n_ood..].iter().map(|d| d.to_string()).collect();
        let (ood, id) = names
            .iter()
            .cloned()
            .partition(|name| ood_domains.iter().any(|d| d == pseudo_domain(name)));
        (id, ood, ood_domains)
    };
    if ood.len() < min_ood {
        let need = (min_ood - ood.len()).min(id.len());
        let moved: Vec<String> = id.split_off(id.len() - need);
        ood.splice(0..0, moved);
    }
    if id.is_empty() || ood.is_empty() {
        return Err(format!(
            "the split leaves {} ID and {} OOD datasets; both need at least one",
            id.len(),
            ood.len()
        ));
    }
    Ok(Split {
        id,
        ood,
        ood_domains,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 113 dataset names of upstream's OOD evidence (its ID list then its OOD list are a partition of the
    /// universe; the universe order is the sorted file names).
    fn upstream() -> (Vec<String>, serde_json::Value) {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/fixtures/husai-evidence/cycle4_followups_run_20260215T190004Z/ood/ood_stress_summary.json"
        );
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        let mut names: Vec<String> = ["id", "ood"]
            .iter()
            .flat_map(|k| v["datasets"][k].as_array().unwrap().iter())
            .map(|n| n.as_str().unwrap().to_string())
            .collect();
        names.sort();
        (names, v)
    }

    #[test]
    fn upstreams_113_names_give_60_domains_15_ood_domains_and_81_id_32_ood_as_its_evidence() {
        let (names, v) = upstream();
        assert_eq!(names.len(), 113);
        let mut domains: Vec<&str> = names.iter().map(|n| pseudo_domain(n)).collect();
        domains.sort_unstable();
        domains.dedup();
        assert_eq!(domains.len(), 60);
        let s = split(&names, 0.25, 8).unwrap();
        assert_eq!((s.id.len(), s.ood.len(), s.ood_domains.len()), (81, 32, 15));
        let strs = |k: &str| -> Vec<String> {
            v["datasets"][k]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n.as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(s.id, strs("id"));
        assert_eq!(s.ood, strs("ood"));
        assert_eq!(s.ood_domains, strs("ood_domains"));
    }

    #[test]
    fn rounding_is_half_to_even_as_python_and_the_minimum_moves_the_last_id_names() {
        assert_eq!(round_half_even(14.5), 14.0);
        assert_eq!(round_half_even(15.5), 16.0);
        assert_eq!(round_half_even(2.5), 2.0);
        assert_eq!(round_half_even(3.4), 3.0);
        assert_eq!(round_half_even(3.6), 4.0);
        assert_eq!(
            (58.0f64 * 0.25).round(),
            15.0,
            "f64::round is not Python's round"
        );
        // 58 domains of one name each: 14 OOD domains, not 15.
        let names: Vec<String> = (0..58).map(|i| format!("{i}_d{i:02}")).collect();
        let s = split(&names, 0.25, 0).unwrap();
        assert_eq!(s.ood.len(), 14);
        assert_eq!(pseudo_domain("12_wikidata_sex"), "wikidata");
        assert_eq!(pseudo_domain("us_state"), "us");
        assert_eq!(pseudo_domain("7hist"), "7hist");
        // Too few OOD names: the last ID names move to the front of the OOD list.
        let names: Vec<String> = ["1_a_x", "2_a_y", "3_b_x", "4_c_x"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let s = split(&names, 0.25, 3).unwrap();
        assert_eq!(s.ood, ["2_a_y", "3_b_x", "4_c_x"]);
        assert_eq!(s.id, ["1_a_x"]);
        // One domain: split by index.
        let one: Vec<String> = (0..8).map(|i| format!("{i}_same")).collect();
        let s = split(&one, 0.25, 0).unwrap();
        assert_eq!((s.id.len(), s.ood.len()), (6, 2));
        assert_eq!(s.ood_domains, ["__index_split__"]);
        assert!(split(&one[..1], 0.25, 0).unwrap_err().contains("0 OOD"));
    }
}
