//! The plugin's config: the common trainer keys (`husai_kernels::trainer::config`), the keys every top-k family
//! has (`husai_kernels::trainer::topk_keys`), BatchTopK's `threshold_lr`, and the prefix widths
//! `matryoshka_widths`; their JSON Schema (what `describe` publishes) and the checked Rust form.

use husai_kernels::engine::EngineConfig;
use husai_kernels::families::DEFAULT_THRESHOLD_LR;
use husai_kernels::trainer::config::{CommonDefaults, split_family_keys};
use husai_kernels::trainer::topk_keys::{TOPK_KEYS, TopKKeys, insert_topk_properties};
use husai_kernels::trainer::{CommonConfig, TrainerError};
use serde_json::{Map, Value, json};

use crate::family::Matryoshka;

/// The family's own keys (the top-k keys, then Matryoshka's).
pub const FAMILY_KEYS: [&str; 8] = [
    TOPK_KEYS[0],
    TOPK_KEYS[1],
    TOPK_KEYS[2],
    TOPK_KEYS[3],
    TOPK_KEYS[4],
    TOPK_KEYS[5],
    "threshold_lr",
    "matryoshka_widths",
];

/// The common keys' defaults (as sae-batchtopk: SAELens 6 starts every SAE with `b_dec = 0`).
pub const DEFAULTS: CommonDefaults = CommonDefaults::saelens6(
    "zeros, as SAELens 6 initialises every SAE including Matryoshka BatchTopK",
);

/// The `config` object of a run request, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct MatryoshkaConfig {
    /// The keys every trainer has.
    pub common: CommonConfig,
    /// The keys every top-k family has (`k`: mean latents per row over a batch).
    pub keys: TopKKeys,
    /// Rate of the inference threshold's moving average.
    pub threshold_lr: f64,
    /// The prefix widths m_1 < … < m_n = d_sae.
    pub widths: Vec<usize>,
}

/// JSON Schema (draft 2020-12) of [`MatryoshkaConfig`].
pub fn config_schema() -> Value {
    let mut props = husai_kernels::trainer::config::common_properties(&DEFAULTS);
    insert_topk_properties(
        &mut props,
        "mean latents per row over a training batch: each step keeps the batch * k largest post-ReLU \
         pre-activations of the whole batch, one selection for every prefix (k <= d_sae)",
    );
    props.insert(
        "threshold_lr".into(),
        json!({"type": "number", "exclusiveMinimum": 0, "maximum": 1, "default": DEFAULT_THRESHOLD_LR,
               "description": "rate of the moving average that estimates the inference threshold from each \
                               step's smallest kept activation (SAELens's topk_threshold_lr)"}),
    );
    props.insert(
        "matryoshka_widths".into(),
        json!({"type": ["array", "null"], "items": {"type": "integer", "minimum": 1}, "minItems": 1,
               "default": null,
               "description": "the nested prefix widths m_1 < ... < m_n, strictly increasing, each <= d_sae; \
                               d_sae is appended when the last is below it (as SAELens does). The loss sums, at \
                               weight 1 each, the reconstruction error of every prefix from its first m_i latents \
                               alone. null: d_sae/8, d_sae/4, d_sae/2, d_sae (rounded down, zeros and repeats \
                               dropped)"}),
    );
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "sae-matryoshka config",
        "type": "object",
        "required": ["d_sae", "k", "seed"],
        "additionalProperties": false,
        "properties": props,
    })
}

/// The default widths for `d_sae`: eighth, quarter, half and whole, without zeros or repeats.
pub fn default_widths(d_sae: usize) -> Vec<usize> {
    let mut w: Vec<usize> = [d_sae / 8, d_sae / 4, d_sae / 2, d_sae]
        .into_iter()
        .filter(|&w| w > 0)
        .collect();
    w.dedup();
    w
}

fn widths_key(v: Option<&Value>, d_sae: usize) -> Result<Vec<usize>, TrainerError> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(default_widths(d_sae));
    };
    let bad =
        |why: String| TrainerError::config("matryoshka_widths", format!("= {v} is invalid: {why}"));
    let list = v
        .as_array()
        .ok_or_else(|| bad("must be a list of positive integers".into()))?;
    if list.is_empty() {
        return Err(bad("must hold at least one width".into()));
    }
    let mut widths = Vec::with_capacity(list.len() + 1);
    for w in list {
        match w.as_u64() {
            Some(n) if n >= 1 => widths.push(n as usize),
            _ => return Err(bad(format!("{w} is not a positive integer"))),
        }
    }
    if let Some(p) = widths.windows(2).find(|p| p[0] >= p[1]) {
        return Err(bad(format!(
            "widths must be strictly increasing ({} then {})",
            p[0], p[1]
        )));
    }
    let last = *widths.last().expect("not empty");
    if last > d_sae {
        return Err(bad(format!("width {last} is above d_sae ({d_sae})")));
    }
    if last < d_sae {
        widths.push(d_sae);
    }
    Ok(widths)
}

impl MatryoshkaConfig {
    /// Parses and checks a request's config; errors name the key.
    pub fn from_json(value: &Value) -> Result<MatryoshkaConfig, TrainerError> {
        let (own, common) = split_family_keys("sae-matryoshka", value, &FAMILY_KEYS)?;
        let common = CommonConfig::parse(common, &DEFAULTS)?;
        let keys = TopKKeys::parse(&own, &common, "mean latents per row")?;
        let threshold_lr = match own.get("threshold_lr") {
            None => DEFAULT_THRESHOLD_LR,
            Some(v) => match v.as_f64() {
                Some(x) if x.is_finite() && x > 0.0 && x <= 1.0 => x,
                _ => {
                    return Err(TrainerError::config(
                        "threshold_lr",
                        format!("= {v} is invalid: must be a number in (0, 1]"),
                    ));
                }
            },
        };
        let widths = widths_key(own.get("matryoshka_widths"), common.d_sae)?;
        Ok(MatryoshkaConfig {
            common,
            keys,
            threshold_lr,
            widths,
        })
    }

    /// The effective config (defaults filled in, d_sae appended to the widths), as the host records it.
    pub fn effective(&self) -> Map<String, Value> {
        let mut m = self.common.to_json();
        self.keys.insert_effective(&mut m);
        m.insert("threshold_lr".into(), json!(self.threshold_lr));
        m.insert("matryoshka_widths".into(), json!(self.widths));
        m
    }

    /// The family.
    pub fn family(&self) -> Matryoshka {
        Matryoshka::new(self.keys.k, self.threshold_lr, &self.widths)
    }

    /// The engine config for `d_in`-wide rows (threads are set by the run).
    pub fn engine_config(&self, d_in: usize) -> EngineConfig {
        self.keys.engine_config(&self.common, d_in)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Value {
        json!({"d_sae": 64, "k": 8, "seed": 1, "steps": 10})
    }

    fn err(v: Value) -> String {
        MatryoshkaConfig::from_json(&v).unwrap_err().to_string()
    }

    #[test]
    fn widths_default_to_a_halving_ladder_and_d_sae_is_appended() {
        let cfg = MatryoshkaConfig::from_json(&base()).unwrap();
        assert_eq!(cfg.widths, [8, 16, 32, 64]);
        assert_eq!(default_widths(4), [1, 2, 4]);
        assert_eq!(default_widths(1), [1]);
        let mut v = base();
        v["matryoshka_widths"] = json!([16, 32]);
        let cfg = MatryoshkaConfig::from_json(&v).unwrap();
        assert_eq!(cfg.widths, [16, 32, 64]);
        assert_eq!(cfg.effective()["matryoshka_widths"], json!([16, 32, 64]));
        assert_eq!((cfg.keys.k, cfg.threshold_lr), (8, DEFAULT_THRESHOLD_LR));
    }

    #[test]
    fn bad_keys_are_named_with_the_rule_they_break() {
        for (bad, want) in [
            (json!([]), "= [] is invalid: must hold at least one width"),
            (
                json!("8,16"),
                "= \"8,16\" is invalid: must be a list of positive integers",
            ),
            (
                json!([8, 0, 64]),
                "= [8,0,64] is invalid: 0 is not a positive integer",
            ),
            (
                json!([8, 2.5]),
                "= [8,2.5] is invalid: 2.5 is not a positive integer",
            ),
            (
                json!([16, 16, 64]),
                "= [16,16,64] is invalid: widths must be strictly increasing (16 then 16)",
            ),
            (
                json!([32, 8]),
                "widths must be strictly increasing (32 then 8)",
            ),
            (
                json!([8, 80]),
                "= [8,80] is invalid: width 80 is above d_sae (64)",
            ),
        ] {
            let mut v = base();
            v["matryoshka_widths"] = bad;
            let e = err(v);
            assert!(
                e.starts_with("config key `matryoshka_widths` ") && e.ends_with(want),
                "{e} lacks {want:?}"
            );
        }
        let mut v = base();
        v["threshold_lr"] = json!(0);
        assert_eq!(
            err(v),
            "config key `threshold_lr` = 0 is invalid: must be a number in (0, 1]"
        );
        let mut v = base();
        v["k"] = json!(65);
        assert_eq!(
            err(v),
            "config key `k` = 65 is invalid: must be <= d_sae (64)"
        );
        let e = err(json!({"d_sae": 64, "seed": 1, "steps": 10}));
        assert_eq!(e, "config key `k` is required (mean latents per row)");
        let mut v = base();
        v["widths"] = json!([8]);
        let e = err(v);
        assert!(
            e.starts_with("config key `widths` is not a sae-matryoshka config key")
                && e.ends_with("threshold_lr, matryoshka_widths"),
            "{e}"
        );
    }

    #[test]
    fn the_schema_describes_every_key_the_parser_reads() {
        let schema = config_schema();
        let props = schema["properties"].as_object().unwrap();
        for key in FAMILY_KEYS {
            assert!(
                props[key]["description"]
                    .as_str()
                    .is_some_and(|d| !d.is_empty()),
                "{key}"
            );
        }
        assert_eq!(schema["title"], "sae-matryoshka config");
    }
}
