//! A RouteSAE run on the shared engine: the router ([`crate::router`]) in front of the engine's TopK trainer.
//! Each step routes the batch, steps the SAE on the routed rows, then steps the router on the SAE's per-row
//! errors of that same forward pass. The bank's rows are its layers side by side (`[rows, L * d]`,
//! `husai_kernels::activations::LayerBank`), so held-out rows, resume and the metric stream are every family's.

use std::cell::RefCell;
use std::path::Path;

use husai_kernels::activations::{ActivationError, LayerBank};
use husai_kernels::adam::{Adam, AdamConfig, Moments};
use husai_kernels::engine::FamilyTrainer;
use husai_kernels::families::TopK;
use husai_kernels::trainer::family_run::RunShape;
use husai_kernels::trainer::{Dataset, Digests, RowSource, Session, StepStats, TrainerError};
use husai_kernels::{EvalMetrics, KernelError};

use crate::router::{Router, Routing, entropy};
use crate::router_file::{self, ROUTER_FILE, ROUTER_STATE_FILE};

/// Relative errors are `||x_hat - x||^2 / max(||x||^2, this)`, so an all-zero row cannot divide by zero.
const MIN_ROW_NORM2: f64 = 1e-12;

/// The router, its optimiser and the SAE's trainer.
pub struct RoutedSession {
    trainer: FamilyTrainer<TopK>,
    router: Router,
    adam: Adam,
    moments: Moments,
    grad: Vec<f32>,
    routing: Routing,
    errors: Vec<f64>,
    layers: Vec<String>,
}

impl RoutedSession {
    /// The router as it is now.
    pub fn router(&self) -> &Router {
        &self.router
    }
}

fn relative_errors(routed: &[f32], row_loss: &[f64], d: usize, out: &mut Vec<f64>) {
    out.clear();
    out.extend(routed.chunks_exact(d).zip(row_loss).map(|(x, &l)| {
        let n2: f64 = x.iter().map(|&v| v as f64 * v as f64).sum();
        l / n2.max(MIN_ROW_NORM2)
    }));
}

impl Session for RoutedSession {
    fn step(&mut self, batch: &[f32]) -> Result<StepStats, KernelError> {
        let Self {
            trainer,
            router,
            routing,
            ..
        } = self;
        trainer.install(|| router.route(batch, routing));
        let mut stats = Session::step(&mut self.trainer, &self.routing.routed)?;
        relative_errors(
            &self.routing.routed,
            self.trainer.last_row_loss(),
            self.router.d,
            &mut self.errors,
        );
        let Self {
            trainer,
            router,
            adam,
            moments,
            grad,
            routing,
            errors,
            ..
        } = self;
        let loss = trainer.install(|| router.loss_and_grad(routing, errors, grad));
        adam.begin_step();
        adam.update(&mut router.w, grad, moments)?;
        stats.loss.push(("router", loss));
        Ok(stats)
    }

    fn evaluate(&self, x: &[f32]) -> Result<EvalMetrics, KernelError> {
        let (n_layers, d) = (self.router.n_layers, self.router.d);
        let mut r = Routing::default();
        self.trainer.install(|| self.router.route(x, &mut r));
        let mut m = self.trainer.evaluate(&r.routed)?;
        let rows = r.rows.max(1) as f64;
        let mean_entropy = r.p.chunks_exact(n_layers).map(entropy).sum::<f64>() / rows;
        m.figures.push(("router_entropy".into(), mean_entropy));
        m.figures
            .push(("router_entropy_max".into(), (n_layers as f64).ln()));
        let mut used = 0usize;
        let mut per_layer = Vec::with_capacity(2 * n_layers);
        for (l, name) in self.layers.iter().enumerate() {
            let rows_l: Vec<usize> = (0..r.rows).filter(|&i| r.layer[i] as usize == l).collect();
            per_layer.push((format!("share_{name}"), rows_l.len() as f64 / rows));
            // FVU on the rows routed to this layer, with their own column means; none when under 2 rows.
            let fvu = if rows_l.len() >= 2 {
                let sub: Vec<f32> = rows_l
                    .iter()
                    .flat_map(|&i| r.routed[i * d..(i + 1) * d].iter().copied())
                    .collect();
                self.trainer.evaluate(&sub)?.reconstruction.fvu
            } else {
                f64::NAN
            };
            per_layer.push((format!("fvu_{name}"), fvu));
            used += usize::from(!rows_l.is_empty());
        }
        m.figures.push(("layers_used".into(), used as f64));
        m.figures.extend(per_layer);
        Ok(m)
    }

    fn steps_done(&self) -> u64 {
        self.trainer.steps_done()
    }

    fn non_finite_parameter(&self) -> Option<&'static str> {
        self.trainer.non_finite_parameter().or_else(|| {
            self.router
                .w
                .iter()
                .any(|v| !v.is_finite())
                .then_some("w_router")
        })
    }

    fn train_dead_fraction(&self) -> f64 {
        self.trainer.train_dead_fraction()
    }
}

/// The RouteSAE run shape: multi-layer banks in, the router around the SAE, the router files out.
pub struct RoutedShape {
    /// `layers` of the config.
    pub layers: Option<Vec<String>>,
    /// The router's Adam learning rate.
    pub router_lr: f64,
    /// The run seed (the router's initial weights draw from its own stream of it).
    pub seed: u64,
    /// The training bank's layer names and width, once it is opened.
    pub(crate) opened: RefCell<Option<(Vec<String>, usize)>>,
}

impl RoutedShape {
    fn layout(&self) -> (Vec<String>, usize) {
        self.opened
            .borrow()
            .clone()
            .expect("the bank is opened before the session starts")
    }

    fn session(
        &self,
        trainer: FamilyTrainer<TopK>,
        router: Router,
        moments: Moments,
        steps_done: u64,
    ) -> Result<RoutedSession, TrainerError> {
        let adam = Adam::with_step(
            AdamConfig {
                lr: self.router_lr as f32,
                ..AdamConfig::default()
            },
            steps_done,
        )
        .map_err(|e| TrainerError::config("router_lr", format!("is invalid: {e}")))?;
        let (layers, _) = self.layout();
        Ok(RoutedSession {
            grad: vec![0.0; router.w.len()],
            trainer,
            router,
            adam,
            moments,
            routing: Routing::default(),
            errors: Vec::new(),
            layers,
        })
    }
}

fn failed(e: KernelError) -> TrainerError {
    TrainerError::Failed(format!("training failed: {e}"))
}

impl RunShape<TopK> for RoutedShape {
    type Session = RoutedSession;

    fn open(&self, path: &Path, bytes: Vec<u8>) -> Result<Box<dyn RowSource>, ActivationError> {
        let bank = LayerBank::from_bytes(path, bytes, self.layers.as_deref())?;
        let (names, d) = (bank.layer_names(), bank.layer_width());
        let mut opened = self.opened.borrow_mut();
        match &*opened {
            None => *opened = Some((names, d)),
            Some((first, first_d)) if (first, *first_d) != (&names, d) => {
                return Err(ActivationError::Tensor {
                    path: path.to_owned(),
                    detail: format!(
                        "its layers {names:?} (width {d}) are not the training bank's {first:?} (width \
                         {first_d}); held-out rows must have the same layers"
                    ),
                });
            }
            Some(_) => {}
        }
        Ok(Box::new(bank))
    }

    fn bank_width(&self, _: usize) -> Option<usize> {
        // The layer count is the bank's; the resumed router's layers are checked against it instead.
        None
    }

    fn sae_width(&self, _: &Dataset) -> Result<usize, TrainerError> {
        Ok(self.layout().1)
    }

    fn start(
        &self,
        mut trainer: FamilyTrainer<TopK>,
        data: &Dataset,
    ) -> Result<RoutedSession, TrainerError> {
        let (layers, d) = self.layout();
        let mut router = Router::init(layers.len(), d, self.seed);
        let mut initial = Routing::default();
        trainer.install(|| {
            router.fit_scale(&data.train);
            router.route(&data.train, &mut initial);
        });
        // b_dec starts from the rows the SAE first sees (the configured rule over the initially routed rows).
        trainer.init_b_dec(&initial.routed).map_err(failed)?;
        let moments = Moments::zeros(router.w.len());
        self.session(trainer, router, moments, 0)
    }

    fn resume(
        &self,
        trainer: FamilyTrainer<TopK>,
        _: &Dataset,
        dir: &Path,
        digests: &mut Digests,
    ) -> Result<RoutedSession, TrainerError> {
        let (layers, d) = self.layout();
        let (router, moments) = router_file::read(dir, &layers, d, digests)?;
        let done = trainer.steps_done();
        self.session(trainer, router, moments, done)
    }

    fn trainer<'s>(&self, session: &'s RoutedSession) -> &'s FamilyTrainer<TopK> {
        &session.trainer
    }

    fn write(&self, s: &RoutedSession, dir: &Path) -> Result<Vec<&'static str>, TrainerError> {
        for (name, bytes) in [
            (ROUTER_FILE, router_file::router_bytes(&s.router, &s.layers)),
            (
                ROUTER_STATE_FILE,
                router_file::state_bytes(&s.router, &s.moments, s.adam.step_count()),
            ),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, bytes).map_err(|e| {
                TrainerError::Output(format!("cannot write {}: {e}", path.display()))
            })?;
        }
        Ok(vec![ROUTER_FILE, ROUTER_STATE_FILE])
    }
}
