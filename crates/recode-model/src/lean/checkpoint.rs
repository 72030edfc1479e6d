//! Layer-wise activation checkpointing on the custom-op mechanism of [`super::with_grad`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use candle_core::{DType, Tensor, TensorId, Var};

use super::{with_grad, CResult};
use crate::error::Result;

/// Gradients computed by a checkpointed layer's backward for its parameters, waiting to be handed
/// to the parameters' gradient slots.
pub(crate) type Stash = Arc<Mutex<HashMap<TensorId, Tensor>>>;

pub(super) fn lock(s: &Stash) -> CResult<std::sync::MutexGuard<'_, HashMap<TensorId, Tensor>>> {
    s.lock()
        .map_err(|_| candle_core::Error::Msg("checkpoint: poisoned gradient stash".into()))
}

/// A scalar that depends on every tracked tensor of `params` and whose backward delivers the
/// gradient stashed for each of them (none while the stash is empty). Used as an extra argument of
/// a checkpointed layer, so the parameters' slots are filled after the layer's backward ran.
pub(super) fn anchor(params: &[Tensor], stash: &Stash) -> Result<Option<Tensor>> {
    let mut acc: Option<Tensor> = None;
    for p in params.iter().filter(|p| p.track_op()) {
        let z = Tensor::zeros(1, DType::F32, p.device())?;
        let (st, id) = (stash.clone(), p.id());
        let zp = with_grad("ckpt-param", z, &[p], move |_, _, _| {
            Ok(vec![lock(&st)?.remove(&id)])
        })?;
        acc = Some(match acc {
            Some(a) => (a + zp)?,
            None => zp,
        });
    }
    Ok(acc)
}

/// Layer-wise activation checkpointing: runs `f` on `x` without recording a graph (`f(x, false)`
/// must use `params` detached), keeping only `x`; the backward recomputes `f(x_leaf, true)` with
/// the graph, backpropagates `(out · grad_out).sum()` and returns the input gradient, while the
/// gradients of the tracked `params` reach their slots through an anchor argument.
pub(crate) fn checkpoint<F>(x: &Tensor, params: Vec<Tensor>, f: F) -> Result<Tensor>
where
    F: Fn(&Tensor, bool) -> Result<Tensor> + Send + Sync + 'static,
{
    let value = f(&x.detach(), false)?;
    let params: Vec<Tensor> = params.into_iter().filter(|p| p.track_op()).collect();
    let stash: Stash = Arc::new(Mutex::new(HashMap::new()));
    let anchor = anchor(&params, &stash)?;
    let x_tracked = x.track_op();
    let mut args = vec![x];
    if let Some(a) = &anchor {
        args.push(a);
    }
    let has_anchor = anchor.is_some();
    with_grad("checkpoint", value, &args, move |args, _, g| {
        let xv = Var::from_tensor(&args[0])?;
        let out = f(xv.as_tensor(), true).map_err(candle_core::Error::wrap)?;
        let gout = g.clone();
        let root = with_grad(
            "ckpt-seed",
            Tensor::zeros((), out.dtype(), out.device())?,
            &[&out],
            move |_, _, _| Ok(vec![Some(gout.clone())]),
        )
        .map_err(candle_core::Error::wrap)?;
        let mut grads = root.backward()?;
        drop((root, out));
        let gx = grads.remove(xv.as_tensor());
        {
            let mut st = lock(&stash)?;
            for p in &params {
                if let Some(gp) = grads.remove(p) {
                    let gp = match st.remove(&p.id()) {
                        Some(prev) => (prev + gp)?,
                        None => gp,
                    };
                    st.insert(p.id(), gp);
                }
            }
        }
        let mut out = vec![if x_tracked { gx } else { None }];
        if has_anchor {
            out.push(Some(args[1].zeros_like()?));
        }
        Ok(out)
    })
}
