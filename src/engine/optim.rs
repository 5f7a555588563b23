//! Optimisers over the image: L-BFGS (limited-memory BFGS, optionally with a safeguarded
//! backtracking line search) and Adam.
//!
//! Every decision of the default optimisers is taken on the device: whether a step is kept,
//! the optimiser's memory, its step length. Nothing is read back to the host inside an
//! iteration, so the host queues work ahead of a GPU instead of waiting for it. A step that meets
//! a NaN or an infinity, or multiplies the loss by more than [`DIVERGENCE_FACTOR`], is refused
//! (the caller stays where it was), the optimiser's memory is cleared and its step shrunk.
//!
//! L-BFGS keeps its correction pairs in one device matrix and computes the quasi-Newton
//! direction in one of two [`Form`]s that give the same direction up to rounding: the textbook
//! two-loop recursion (two small operations per pair and loop), or the compact form (two
//! matrix products over all the pairs, the recursion itself done on small matrices of inner
//! products), which launches a few kernels instead of hundreds.

use tch::{Device, Kind, Tensor};

use super::host;
use crate::error::Result;

/// A point of the optimisation, on the device: the image (network space), its loss figures and
/// the gradient of the total loss.
pub(crate) struct Point {
    pub x: Tensor,
    /// [total, content, tv, E_l for each style layer, Σ gradient], float64.
    pub scalars: Tensor,
    pub gradient: Tensor,
}

impl Point {
    /// The total loss (a 0-d device tensor).
    pub fn total(&self) -> Tensor {
        self.scalars.get(0)
    }

    /// Whether every figure is finite; the gradient's sum stands for the gradient (a NaN or an
    /// infinity anywhere makes it non-finite). A 0-d device boolean.
    pub fn finite(&self) -> Tensor {
        self.scalars.isfinite().all()
    }

    /// `self` where `condition` (a 0-d device boolean) holds, else `other`.
    pub fn choose(&self, condition: &Tensor, other: &Point) -> Point {
        Point {
            x: self.x.where_self(condition, &other.x),
            scalars: self.scalars.where_self(condition, &other.scalars),
            gradient: self.gradient.where_self(condition, &other.gradient),
        }
    }
}

/// The point an iteration proposes, and whether it may be taken (a 0-d device boolean).
pub(crate) struct Candidate {
    pub point: Point,
    pub acceptable: Tensor,
    /// Whether the step was a probe (a 0-d device boolean): a gradient step scaled without
    /// curvature information, as L-BFGS takes first and after forgetting its pairs. Its loss
    /// change is small by construction and says nothing about convergence.
    pub probe: Tensor,
}

/// The objective: the evaluated point at an image.
pub(crate) type Objective<'a> = dyn FnMut(&Tensor) -> Result<Point> + 'a;

/// One optimisation algorithm.
pub(crate) trait Optimizer {
    /// One iteration from `at`: the point it proposes, evaluating the objective as often as the
    /// algorithm needs.
    fn step(&mut self, at: &Point, objective: &mut Objective<'_>) -> Result<Candidate>;

    /// What became of the candidate `next` proposed from `at`: `taken` when it is the new
    /// point, `refused` when the caller stayed at `at` (a recovery); neither once the
    /// optimisation has stopped. Both are 0-d device booleans.
    fn update(&mut self, at: &Point, next: &Point, taken: &Tensor, refused: &Tensor);
}

/// A step that multiplies the loss by more than this has diverged (L-BFGS without a line search
/// raises the loss now and then, but never by this much on a sane step).
pub(crate) const DIVERGENCE_FACTOR: f64 = 100.0;

/// Whether a step from `at` to `next` can be taken: finite, and not diverging (device boolean).
fn acceptable(at: &Point, next: &Point) -> Tensor {
    let bound = at.total().abs() * DIVERGENCE_FACTOR;
    next.finite().logical_and(&next.total().le_tensor(&bound))
}

fn scalar(value: f64, device: Device) -> Tensor {
    Tensor::full([], value, (Kind::Double, device))
}

fn flag(value: bool, device: Device) -> Tensor {
    Tensor::full([], i64::from(value), (Kind::Bool, device))
}

/// min(1, 1/‖g‖₁): without curvature information the gradient's scale is meaningless, so the
/// first step has unit L1 length at most, as PyTorch's and Torch7's L-BFGS do.
fn first_step_factor(g: &Tensor) -> Tensor {
    g.abs().sum(Kind::Double).reciprocal().clamp_max(1.0)
}

/// How L-BFGS computes its direction; both give the two-loop recursion's direction up to
/// rounding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Form {
    /// The two-loop recursion: per pair, a dot product and an update of a vector, each way.
    /// Measured faster on the CPU, where the running vector stays in cache while the pairs
    /// stream past (at 1280x720, 50 pairs: 119 ms against 330 ms on the build machine).
    TwoLoop,
    /// Two matrix products over all the pairs and a few operations on small matrices: a handful
    /// of kernel launches instead of four per pair.
    Compact,
}

/// Chooses the form with `STYLIZE_VIDEO_LBFGS_FORM` (`two-loop` or `compact`), for benchmarks.
const FORM_VARIABLE: &str = "STYLIZE_VIDEO_LBFGS_FORM";

impl Form {
    /// The form for `device`: the compact form on a GPU, the two-loop recursion on the CPU,
    /// unless [`FORM_VARIABLE`] says otherwise.
    pub fn for_device(device: Device) -> Form {
        match std::env::var(FORM_VARIABLE).as_deref() {
            Ok("two-loop") => Form::TwoLoop,
            Ok("compact") => Form::Compact,
            _ if device.is_cuda() => Form::Compact,
            _ => Form::TwoLoop,
        }
    }
}

/// L-BFGS.
pub(crate) struct Lbfgs {
    capacity: usize,
    /// Decided at the first step, from the device, unless set.
    form: Option<Form>,
    learning_rate: f64,
    line_search: bool,
    /// Multiplies the step; halved by each recovery, doubled back (up to 1) by good steps.
    damping: Option<Tensor>,
    memory: Option<Memory>,
}

/// The correction pairs (s, y) and their inner products, on the device.
struct Memory {
    form: Form,
    /// capacity x 2 x n, float32: slot i holds s_i in [i][0] and y_i in [i][1].
    pairs: Tensor,
    /// Slots written so far (at most the capacity).
    filled: usize,
    /// The slot the next pair goes to (the oldest once all are written).
    next: usize,
    /// Row r: the slots from the oldest to the newest when slot r is the oldest.
    orders: Tensor,
    /// 1/yᵢᵀsᵢ per slot; 0 for a slot without a usable pair (float64).
    rho: Tensor,
    /// Compact form only: sᵢᵀyⱼ and yᵢᵀyⱼ for slots i, j (float64, capacity x capacity).
    sy: Tensor,
    yy: Tensor,
    /// Compact form only: sᵢᵀg and yᵢᵀg for the current gradient g (capacity x 2, float64).
    pg: Tensor,
    /// sᵀy / yᵀy of the newest usable pair: the scale of the initial inverse Hessian.
    gamma: Tensor,
    /// Whether any slot holds a usable pair (0-d boolean).
    usable: Tensor,
}

impl Memory {
    fn new(form: Form, capacity: usize, n: i64, device: Device) -> Self {
        let c = capacity as i64;
        let long = (Kind::Int64, device);
        let double = (Kind::Double, device);
        Memory {
            form,
            pairs: Tensor::zeros([c, 2, n], (Kind::Float, device)),
            filled: 0,
            next: 0,
            orders: (Tensor::arange(c, long).unsqueeze(1) + Tensor::arange(c, long).unsqueeze(0))
                .remainder(c),
            rho: Tensor::zeros([c], double),
            sy: Tensor::zeros([c, c], double),
            yy: Tensor::zeros([c, c], double),
            pg: Tensor::zeros([c, 2], double),
            gamma: scalar(1.0, device),
            usable: flag(false, device),
        }
    }

    /// The written slots, oldest first.
    fn order(&self) -> Tensor {
        let k = self.filled as i64;
        if self.filled < self.rho.size()[0] as usize {
            self.orders.get(0).narrow(0, 0, k)
        } else {
            self.orders.get(self.next as i64)
        }
    }

    /// The written slots' pairs as rows s_0, y_0, s_1, y_1, ... (2k x n, a view).
    fn rows(&self) -> Tensor {
        let k = self.filled as i64;
        let n = self.pairs.size()[2];
        self.pairs.narrow(0, 0, k).view([2 * k, n])
    }

    /// H g for the inverse-Hessian approximation H of the pairs and g the current gradient
    /// (flat, float32). Only meaningful when `usable`.
    fn apply(&self, g: &Tensor) -> Tensor {
        match self.form {
            Form::TwoLoop => self.two_loop(g),
            Form::Compact => self.compact(g),
        }
    }

    /// The written slots, oldest first, as the host knows them.
    fn slots(&self) -> Vec<i64> {
        let capacity = self.rho.size()[0];
        let k = self.filled as i64;
        if k < capacity {
            (0..k).collect()
        } else {
            (self.next as i64..capacity)
                .chain(0..self.next as i64)
                .collect()
        }
    }

    /// The two-loop recursion, every coefficient a 0-d device tensor. A slot whose ρ is 0 (an
    /// inert or forgotten pair) contributes nothing.
    fn two_loop(&self, g: &Tensor) -> Tensor {
        let slots = self.slots();
        let pair = |i: i64| (self.pairs.get(i).get(0), self.pairs.get(i).get(1));
        let mut q = g.copy();
        let mut alphas = Vec::with_capacity(slots.len());
        for &i in slots.iter().rev() {
            let (s, y) = pair(i);
            let a = self.rho.get(i) * s.dot(&q);
            let _ = q.addcmul_(&y, &-&a);
            alphas.push(a);
        }
        let mut r = q * &self.gamma;
        for (&i, a) in slots.iter().zip(alphas.iter().rev()) {
            let (s, y) = pair(i);
            let b = self.rho.get(i) * y.dot(&r);
            let _ = r.addcmul_(&s, &(a - b));
        }
        r
    }

    /// The two-loop recursion in closed form, from the inner products kept in `pg`, `sy`, `yy`. With pairs in order from the oldest, the first
    /// loop's coefficients solve (I + diag(ρ) U) a = ρ ⊙ Sᵀg, U the strict upper triangle of
    /// SᵀY; the second loop's solve (I + diag(ρ) Uᵀ) b = ρ ⊙ (γ (Yᵀg − YᵀY a) + Uᵀ a); then
    /// H g = γ g + S (a − b) − γ Y a.
    fn compact(&self, g: &Tensor) -> Tensor {
        let order = self.order();
        let k = self.filled as i64;
        let pick = |m: &Tensor| {
            m.narrow(0, 0, k)
                .narrow(1, 0, k)
                .index_select(0, &order)
                .index_select(1, &order)
        };
        let rho = self.rho.narrow(0, 0, k).index_select(0, &order);
        let pg = self.pg.narrow(0, 0, k).index_select(0, &order);
        let (sg, yg) = (pg.select(1, 0), pg.select(1, 1));
        let (sy, yy) = (pick(&self.sy), pick(&self.yy));
        let eye = Tensor::eye(k, (Kind::Double, g.device()));
        let upper = sy.triu(1);
        let lower = upper.tr();
        let a = (&eye + rho.unsqueeze(1) * &upper)
            .linalg_solve_triangular(&(&rho * &sg).unsqueeze(1), true, true, true)
            .squeeze_dim(1);
        let rhs = &rho * ((&yg - yy.mv(&a)) * &self.gamma + lower.mv(&a));
        let b = (&eye + rho.unsqueeze(1) * &lower)
            .linalg_solve_triangular(&rhs.unsqueeze(1), false, true, true)
            .squeeze_dim(1);
        // Coefficients of s_i and y_i, back in slot order, interleaved as the rows are.
        let by_age = Tensor::stack(&[&a - &b, -(&a * &self.gamma)], 1);
        let by_slot = by_age.zeros_like().index_copy(0, &order, &by_age);
        self.rows()
            .tr()
            .mv(&by_slot.view([-1]).to_kind(Kind::Float))
            + g * &self.gamma
    }

    /// Stores the pair (s, y) of a step, usable when the step was `taken` and its curvature is
    /// positive, and the inner products with `g`, the gradient at the point the optimisation is
    /// now at (all flat, float32).
    fn push(&mut self, s: &Tensor, y: &Tensor, g: &Tensor, taken: &Tensor) {
        let slot = self.next as i64;
        let capacity = self.rho.size()[0] as usize;
        let ys = s.dot(y).to_kind(Kind::Double);
        let yy = y.dot(y).to_kind(Kind::Double);
        // Only pairs with positive curvature keep H positive definite; the others are stored
        // as zeros, inert, so that no NaN from a refused step enters the memory.
        let valid = taken.logical_and(&ys.gt(1e-10)).logical_and(&yy.isfinite());
        let valid = &valid;
        self.pairs
            .get(slot)
            .get(0)
            .copy_(&s.where_scalarother(valid, 0.0));
        self.pairs
            .get(slot)
            .get(1)
            .copy_(&y.where_scalarother(valid, 0.0));
        self.filled = (self.filled + 1).min(capacity);
        self.next = (self.next + 1) % capacity;
        self.rho
            .get(slot)
            .copy_(&ys.reciprocal().where_scalarother(valid, 0.0));
        self.gamma = (&ys / &yy).where_self(valid, &self.gamma);
        self.usable = self.usable.logical_or(valid);
        if self.form == Form::TwoLoop {
            return;
        }
        let k = self.filled as i64;
        // One pass over the pairs: their inner products with g and the stored s and y.
        let stored = self.pairs.get(slot);
        let products = self
            .rows()
            .mm(&Tensor::stack(&[g, &stored.get(0), &stored.get(1)], 1))
            .to_kind(Kind::Double);
        let column = |c: i64| products.select(1, c).reshape([k, 2]);
        let (with_g, with_s, with_y) = (column(0), column(1), column(2));
        self.pg.narrow(0, 0, k).copy_(&with_g);
        // Row `slot` of SᵀY holds s_slot·y_j, its column s_i·y_slot; YᵀY is symmetric.
        let cross = |m: &Tensor, row: &Tensor, column: &Tensor| {
            m.get(slot).narrow(0, 0, k).copy_(row);
            m.select(1, slot).narrow(0, 0, k).copy_(column);
        };
        cross(&self.sy, &with_s.select(1, 1), &with_y.select(1, 0));
        cross(&self.yy, &with_y.select(1, 1), &with_y.select(1, 1));
    }

    /// Forgets every pair where `now` holds.
    fn clear_if(&mut self, now: &Tensor) {
        let keep = now.logical_not();
        self.rho = &self.rho * &keep;
        self.usable = self.usable.logical_and(&keep);
    }
}

/// Armijo's sufficient-decrease constant for the backtracking line search.
const ARMIJO_C1: f64 = 1e-4;
/// Halvings the line search tries before giving up on a direction.
const MAX_BACKTRACKS: usize = 20;

impl Lbfgs {
    /// L-BFGS keeping `history` pairs (storage for `min(history, iterations)` is made at the
    /// first step).
    pub fn new(history: usize, iterations: usize, learning_rate: f64, line_search: bool) -> Self {
        Lbfgs {
            capacity: history.min(iterations).max(1),
            form: None,
            learning_rate,
            line_search,
            damping: None,
            memory: None,
        }
    }

    /// The form of the direction on `device`, decided once.
    fn form(&mut self, device: Device) -> Form {
        *self.form.get_or_insert_with(|| Form::for_device(device))
    }

    /// The quasi-Newton direction −H g, the step length along it (0-d float64) and whether it
    /// is a probe (see [`Candidate::probe`]), on the device.
    fn direction(&mut self, g: &Tensor) -> (Tensor, Tensor, Tensor) {
        let device = g.device();
        let damping = self.damping.get_or_insert_with(|| scalar(1.0, device));
        let first = first_step_factor(g) * &*damping * self.learning_rate;
        match self.memory.as_ref().filter(|m| m.filled > 0) {
            None => (-g, first, flag(true, device)),
            Some(m) => {
                let full = damping.multiply_scalar(self.learning_rate);
                (
                    (-m.apply(g)).where_self(&m.usable, &-g),
                    full.where_self(&m.usable, &first),
                    m.usable.logical_not(),
                )
            }
        }
    }

    /// The backtracking line search along `d` from `at` (reads the loss of every trial).
    fn search(
        &mut self,
        at: &Point,
        g: &Tensor,
        mut d: Tensor,
        t: Tensor,
        mut probe: Tensor,
        objective: &mut Objective<'_>,
    ) -> Result<Candidate> {
        let device = g.device();
        let f0 = host::read_one(&at.total())?;
        let mut t = host::read_one(&t)?;
        let mut gtd = host::read_one(&g.dot(&d))?;
        if gtd >= 0.0 {
            // Round-off made the direction point uphill: forget the history, go down.
            if let Some(m) = self.memory.as_mut() {
                m.clear_if(&flag(true, device));
            }
            d = -g;
            gtd = -host::read_one(&g.dot(g))?;
            let damping = self.damping.as_ref().map_or(Ok(1.0), host::read_one)?;
            t = host::read_one(&first_step_factor(g))? * damping * self.learning_rate;
            probe = flag(true, device);
        }
        let shape = at.x.size();
        let mut last = None;
        for _ in 0..MAX_BACKTRACKS {
            let x = &at.x + (&d * t).view(shape.as_slice());
            let point = objective(&x)?;
            let [total, finite] = host::read(&Tensor::stack(
                &[point.total(), point.finite().to_kind(Kind::Double)],
                0,
            ))?[..] else {
                unreachable!("two figures")
            };
            if finite == 1.0 && total <= f0 + ARMIJO_C1 * t * gtd {
                return Ok(Candidate {
                    point,
                    acceptable: flag(true, device),
                    probe,
                });
            }
            last = Some(point);
            t *= 0.5;
        }
        Ok(Candidate {
            point: last.expect("at least one trial"),
            acceptable: flag(false, device),
            probe,
        })
    }
}

impl Optimizer for Lbfgs {
    fn step(&mut self, at: &Point, objective: &mut Objective<'_>) -> Result<Candidate> {
        let g = at.gradient.reshape([-1]);
        let (d, t, probe) = self.direction(&g);
        if self.line_search {
            return self.search(at, &g, d, t, probe, objective);
        }
        let x = &at.x + (d * t).reshape(at.x.size().as_slice());
        let point = objective(&x)?;
        let acceptable = acceptable(at, &point);
        Ok(Candidate {
            point,
            acceptable,
            probe,
        })
    }

    fn update(&mut self, at: &Point, next: &Point, taken: &Tensor, refused: &Tensor) {
        let device = at.x.device();
        let s = (&next.x - &at.x).reshape([-1]);
        let y = (&next.gradient - &at.gradient).reshape([-1]);
        let g = next
            .gradient
            .where_self(taken, &at.gradient)
            .reshape([-1])
            .to_kind(Kind::Float);
        let (capacity, form) = (self.capacity, self.form(device));
        let memory = self
            .memory
            .get_or_insert_with(|| Memory::new(form, capacity, s.size()[0], device));
        memory.push(&s, &y, &g, taken);
        memory.clear_if(refused);
        let damping = self.damping.get_or_insert_with(|| scalar(1.0, device));
        // A good step earns back some of the step length lost in recoveries.
        let grown = damping.multiply_scalar(2.0).clamp_max(1.0);
        let shrunk = damping.multiply_scalar(0.5);
        *damping = grown.where_self(taken, &shrunk.where_self(refused, damping));
    }
}

/// Adam (Kingma and Ba) with the usual bias correction.
pub(crate) struct Adam {
    learning_rate: f64,
    beta1: f64,
    beta2: f64,
    epsilon: f64,
    /// First and second moments and the step count since the last reset, and the step's
    /// scale (halved by each recovery), on the device.
    state: Option<AdamState>,
    /// The moments and count of the candidate in flight.
    proposed: Option<(Tensor, Tensor, Tensor)>,
}

struct AdamState {
    m: Tensor,
    v: Tensor,
    t: Tensor,
    scale: Tensor,
}

impl Adam {
    pub fn new(learning_rate: f64) -> Self {
        Adam {
            learning_rate,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            state: None,
            proposed: None,
        }
    }
}

impl Optimizer for Adam {
    fn step(&mut self, at: &Point, objective: &mut Objective<'_>) -> Result<Candidate> {
        let g = &at.gradient;
        let device = g.device();
        let state = self.state.get_or_insert_with(|| AdamState {
            m: g.zeros_like(),
            v: g.zeros_like(),
            t: scalar(0.0, device),
            scale: scalar(1.0, device),
        });
        let m = &state.m * self.beta1 + g * (1.0 - self.beta1);
        let v = &state.v * self.beta2 + g.square() * (1.0 - self.beta2);
        let t = &state.t + 1.0;
        // 1 − βᵗ with t on the device.
        let correction = |beta: f64| -((&t * beta.ln()).exp()) + 1.0;
        let m_hat = &m / correction(self.beta1);
        let v_hat = &v / correction(self.beta2);
        let step = m_hat / (v_hat.sqrt() + self.epsilon) * (&state.scale * self.learning_rate);
        let x = &at.x - step;
        let point = objective(&x)?;
        let acceptable = acceptable(at, &point);
        self.proposed = Some((m, v, t));
        // Adam's steps have their full size from the first (learning-rate units per pixel).
        Ok(Candidate {
            point,
            acceptable,
            probe: flag(false, device),
        })
    }

    fn update(&mut self, _at: &Point, _next: &Point, taken: &Tensor, refused: &Tensor) {
        let (Some(state), Some((m, v, t))) = (self.state.as_mut(), self.proposed.take()) else {
            return;
        };
        // Taken: the new moments. Refused: start afresh with half the step. Stopped: as was.
        let pick = |new: &Tensor, old: &Tensor| {
            new.where_self(taken, &old.where_scalarother(&refused.logical_not(), 0.0))
        };
        state.m = pick(&m, &state.m);
        state.v = pick(&v, &state.v);
        state.t = pick(&t, &state.t);
        state.scale = state
            .scale
            .multiply_scalar(0.5)
            .where_self(refused, &state.scale);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The two-loop recursion, as textbooks write it, on pairs oldest first.
    fn two_loop(pairs: &[(Tensor, Tensor)], g: &Tensor) -> Tensor {
        let rho: Vec<f64> = pairs
            .iter()
            .map(|(s, y)| 1.0 / f64::try_from(s.dot(y)).unwrap())
            .collect();
        let mut q = g.to_kind(Kind::Double);
        let mut alphas = vec![0.0; pairs.len()];
        for (i, (s, y)) in pairs.iter().enumerate().rev() {
            alphas[i] = rho[i] * f64::try_from(s.to_kind(Kind::Double).dot(&q)).unwrap();
            q -= y.to_kind(Kind::Double) * alphas[i];
        }
        let (s, y) = pairs.last().unwrap();
        let gamma = f64::try_from(s.dot(y) / y.dot(y)).unwrap();
        let mut r = q * gamma;
        for (i, (s, y)) in pairs.iter().enumerate() {
            let b = rho[i] * f64::try_from(y.to_kind(Kind::Double).dot(&r)).unwrap();
            r += s.to_kind(Kind::Double) * (alphas[i] - b);
        }
        r
    }

    fn relative_difference(a: &Tensor, b: &Tensor) -> f64 {
        let a = a.to_kind(Kind::Double);
        let b = b.to_kind(Kind::Double);
        f64::try_from((&a - &b).norm() / b.norm()).unwrap()
    }

    /// A random positive-definite quadratic's Hessian: y = A s has positive curvature.
    fn hessian(n: i64) -> Tensor {
        let q = Tensor::randn([n, n], (Kind::Float, Device::Cpu)) / (n as f64).sqrt();
        q.mm(&q.tr()) + Tensor::eye(n, (Kind::Float, Device::Cpu))
    }

    #[test]
    fn both_forms_give_the_two_loop_direction_also_after_the_memory_wraps() {
        for form in [Form::TwoLoop, Form::Compact] {
            tch::manual_seed(7);
            let n = 500;
            let capacity = 5;
            let mut memory = Memory::new(form, capacity, n, Device::Cpu);
            let mut pairs: Vec<(Tensor, Tensor)> = Vec::new();
            let hessian = hessian(n);
            let taken = flag(true, Device::Cpu);
            for step in 0..12 {
                let s = Tensor::randn([n], (Kind::Float, Device::Cpu));
                let y = hessian.mv(&s);
                let g = Tensor::randn([n], (Kind::Float, Device::Cpu));
                memory.push(&s, &y, &g, &taken);
                pairs.push((s, y));
                if pairs.len() > capacity {
                    drop(pairs.remove(0));
                }
                let want = two_loop(&pairs, &g);
                let got = memory.apply(&g);
                let error = relative_difference(&got, &want);
                assert!(
                    error < 1e-4,
                    "{form:?}, step {step}: relative difference {error}"
                );
            }
            // A refused step's pair (here full of NaN) is stored inert: it changes nothing but
            // takes the oldest slot.
            let g = Tensor::randn([n], (Kind::Float, Device::Cpu));
            let nan = Tensor::full([n], f64::NAN, (Kind::Float, Device::Cpu));
            memory.push(&nan, &nan, &g, &flag(false, Device::Cpu));
            drop(pairs.remove(0));
            let error = relative_difference(&memory.apply(&g), &two_loop(&pairs, &g));
            assert!(error < 1e-4, "{form:?} after an inert pair: {error}");
            // Cleared, it holds nothing usable.
            memory.clear_if(&flag(true, Device::Cpu));
            assert!(!bool::try_from(&memory.usable).unwrap());
            assert_eq!(
                f64::try_from(memory.rho.abs().sum(Kind::Double)).unwrap(),
                0.0
            );
        }
    }

    #[test]
    fn both_forms_minimise_a_quadratic_along_the_same_path() {
        let n = 300;
        tch::manual_seed(3);
        let a = hessian(n);
        let b = Tensor::randn([n], (Kind::Float, Device::Cpu)) * 10.0;
        // f(x) = ½ xᵀAx − bᵀx, minimum at A⁻¹b.
        let mut objective = |x: &Tensor| -> Result<Point> {
            let ax = a.mv(x);
            let f = (x.dot(&ax) * 0.5 - b.dot(x)).to_kind(Kind::Double);
            let gradient = ax - &b;
            let zero = f.zeros_like();
            let scalars = Tensor::stack(
                &[f, zero.shallow_clone(), zero, gradient.sum(Kind::Double)],
                0,
            );
            Ok(Point {
                x: x.shallow_clone(),
                scalars,
                gradient,
            })
        };
        let minimum = f64::try_from(
            objective(
                &a.to_kind(Kind::Double)
                    .inverse()
                    .mv(&b.to_kind(Kind::Double))
                    .to_kind(Kind::Float),
            )
            .unwrap()
            .total(),
        )
        .unwrap();
        let mut paths = Vec::new();
        for form in [Form::TwoLoop, Form::Compact] {
            let mut lbfgs = Lbfgs::new(10, 40, 1.0, false);
            lbfgs.form = Some(form);
            let mut at = objective(&Tensor::zeros([n], (Kind::Float, Device::Cpu))).unwrap();
            let running = flag(true, Device::Cpu);
            let mut path = Vec::new();
            for _ in 0..40 {
                let candidate = lbfgs.step(&at, &mut objective).unwrap();
                let taken = candidate.acceptable.logical_and(&running);
                let refused = taken.logical_not();
                lbfgs.update(&at, &candidate.point, &taken, &refused);
                at = candidate.point.choose(&taken, &at);
                path.push(f64::try_from(at.total()).unwrap());
            }
            let gap = (path[39] - minimum) / minimum.abs();
            assert!(gap.abs() < 1e-6, "{form:?} ends {gap:e} from the minimum");
            paths.push(path);
        }
        // The same path while the gap to the minimum is above float32 rounding.
        let mut compared = 0;
        for (i, (p, q)) in paths[0].iter().zip(&paths[1]).enumerate() {
            let (gp, gq) = (p - minimum, q - minimum);
            if gp.abs().min(gq.abs()) > 1e-4 * minimum.abs() {
                compared += 1;
                assert!(
                    (gp / gq - 1.0).abs() < 0.05,
                    "iteration {i}: {p} against {q}"
                );
            }
        }
        assert!(compared >= 5, "only {compared} iterations compared");
    }
}
