//! Keys and values kept across calls: the inference [`KvCache`] (per-layer growable buffers) and
//! the shared-prefix keys and values of a cache-free forward, with the attention mask rows.

use std::sync::Arc;

use candle_core::{DType, Tensor};

use crate::error::{ModelError, Result};
use crate::fused::DecodePlan;

/// Keys and values of one layer, stored in a pre-allocated buffer that grows by doubling, after
/// the positions the rows share (if any).
#[derive(Debug, Clone)]
pub(super) struct LayerKv {
    pub(super) k: Tensor,
    pub(super) v: Tensor,
    pub(super) len: usize,
    pub(super) shared: Option<SharedRows>,
}

/// Positions cached once for several rows (a prompt's, fanned out to its samples): keys and values
/// `[P, KVH, len, D]` and the shared row each cache row continues.
#[derive(Debug, Clone)]
pub(super) struct SharedRows {
    pub(super) k: Tensor,
    pub(super) v: Tensor,
    pub(super) rows: Arc<[u32]>,
}

impl SharedRows {
    /// Shared positions.
    pub(super) fn len(&self) -> Result<usize> {
        Ok(self.k.dim(2)?)
    }

    /// The shared keys and values as every row sees them (`[B, KVH, len, D]` copies).
    fn per_row(&self) -> Result<(Tensor, Tensor)> {
        let idx = Tensor::new(&self.rows[..], self.k.device())?;
        Ok((self.k.index_select(&idx, 0)?, self.v.index_select(&idx, 0)?))
    }
}

impl LayerKv {
    /// [`LayerKv::push`], then every cached position's keys and values `[B, KVH, L, D]` (the
    /// shared ones copied in front of each row's own).
    pub(super) fn append(
        slot: &mut Option<LayerKv>,
        k: &Tensor,
        v: &Tensor,
        capacity: usize,
    ) -> Result<(Tensor, Tensor)> {
        let kv = Self::push(slot, k, v, capacity)?;
        let (k, v) = (kv.k.narrow(2, 0, kv.len)?, kv.v.narrow(2, 0, kv.len)?);
        match &kv.shared {
            None => Ok((k, v)),
            Some(sh) => {
                let (sk, sv) = sh.per_row()?;
                Ok((Tensor::cat(&[&sk, &k], 2)?, Tensor::cat(&[&sv, &v], 2)?))
            }
        }
    }

    /// Appends keys `k` and values `v` `[B, KVH, T, D]` to the layer's cache (allocating
    /// `capacity` positions on first use); returns the layer's cache.
    pub(super) fn push<'a>(
        slot: &'a mut Option<LayerKv>,
        k: &Tensor,
        v: &Tensor,
        capacity: usize,
    ) -> Result<&'a LayerKv> {
        let t = k.dim(2)?;
        let k = k.contiguous()?;
        let v = v.contiguous()?;
        let kv = match slot {
            Some(kv) => kv,
            None => {
                let (b, h, _, d) = k.dims4()?;
                let cap = capacity.max(t);
                let k0 = Tensor::zeros((b, h, cap, d), k.dtype(), k.device())?;
                let v0 = Tensor::zeros((b, h, cap, d), v.dtype(), v.device())?;
                slot.insert(LayerKv {
                    k: k0,
                    v: v0,
                    len: 0,
                    shared: None,
                })
            }
        };
        let cap = kv.k.dim(2)?;
        if kv.len + t > cap {
            let extra = (kv.len + t).max(2 * cap) - cap;
            let (b, h, _, d) = kv.k.dims4()?;
            let zk = Tensor::zeros((b, h, extra, d), k.dtype(), k.device())?;
            let zv = Tensor::zeros((b, h, extra, d), v.dtype(), v.device())?;
            kv.k = Tensor::cat(&[&kv.k, &zk], 2)?;
            kv.v = Tensor::cat(&[&kv.v, &zv], 2)?;
        }
        kv.k.slice_set(&k, 2, kv.len)?;
        kv.v.slice_set(&v, 2, kv.len)?;
        kv.len += t;
        Ok(kv)
    }
}

/// Inference KV cache for a batch: per-layer keys/values, the attention mask of every cached
/// position, and the next RoPE position of each row.
#[derive(Debug, Clone)]
pub struct KvCache {
    pub(super) layers: Vec<Option<LayerKv>>,
    pub(super) mask: Vec<Vec<u8>>,
    pub(super) next_pos: Vec<u32>,
    pub(super) capacity: usize,
    /// The raw decode plan of the generation this cache serves, with whether it includes the
    /// adapters (`None` inside: the model cannot decode raw); built on the first decode step.
    pub(super) plan: Option<(bool, Option<Arc<DecodePlan>>)>,
}

impl KvCache {
    /// An empty cache for `n_layers` layers, pre-allocating `capacity` positions on first use.
    pub fn new(n_layers: usize, capacity: usize) -> Self {
        Self {
            layers: vec![None; n_layers],
            mask: Vec::new(),
            next_pos: Vec::new(),
            capacity,
            plan: None,
        }
    }

    /// Number of cached positions (including padding).
    pub fn len(&self) -> usize {
        self.mask.first().map_or(0, Vec::len)
    }

    /// Whether nothing is cached yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Rows in the cached batch.
    pub fn batch_size(&self) -> usize {
        self.mask.len()
    }

    /// Keeps only the given rows, in the given order (rows may repeat): used to fan one prefill
    /// out to n samples and to drop finished sequences.
    pub fn select_rows(&mut self, rows: &[usize]) -> Result<()> {
        if let Some(&bad) = rows.iter().find(|&&r| r >= self.batch_size()) {
            return Err(ModelError::RowOutOfRange {
                what: "select_rows",
                row: bad,
                rows: self.batch_size(),
            });
        }
        if rows.is_empty() {
            return Err(ModelError::Input("select_rows: no rows".into()));
        }
        let device = self
            .layers
            .iter()
            .flatten()
            .next()
            .map(|kv| kv.k.device().clone());
        if let Some(device) = device {
            let idx: Vec<u32> = rows.iter().map(|&r| r as u32).collect();
            let idx = Tensor::new(idx.as_slice(), &device)?;
            for kv in self.layers.iter_mut().flatten() {
                kv.k = kv.k.index_select(&idx, 0)?;
                kv.v = kv.v.index_select(&idx, 0)?;
                if let Some(sh) = kv.shared.as_mut() {
                    sh.rows = rows.iter().map(|&r| sh.rows[r]).collect();
                }
            }
        }
        self.select_row_state(rows);
        Ok(())
    }

    /// Fans every row out to `n` consecutive rows (row `r` becomes `r*n .. r*n+n`) that share its
    /// cached positions: they are kept once, and each new row caches only its own positions
    /// from here on (attention reads the shared ones first, so decoding gives the bits of
    /// [`KvCache::select_rows`] with each row repeated `n` times, without the `n` copies).
    pub fn share_rows(&mut self, n: usize) -> Result<()> {
        if n == 0 {
            return Err(ModelError::Input("share_rows: n must be >= 1".into()));
        }
        let b = self.batch_size();
        let fanned: Vec<usize> = (0..b * n).map(|r| r / n).collect();
        for kv in self.layers.iter_mut().flatten() {
            if let Some(sh) = kv.shared.as_mut() {
                // Already sharing: the own positions are fanned out as copies.
                let idx: Vec<u32> = fanned.iter().map(|&r| r as u32).collect();
                let idx = Tensor::new(idx.as_slice(), kv.k.device())?;
                kv.k = kv.k.index_select(&idx, 0)?;
                kv.v = kv.v.index_select(&idx, 0)?;
                sh.rows = fanned.iter().map(|&r| sh.rows[r]).collect();
                continue;
            }
            let (_, h, cap, d) = kv.k.dims4()?;
            let own_cap = cap.saturating_sub(kv.len).max(1);
            kv.shared = Some(SharedRows {
                k: kv.k.narrow(2, 0, kv.len)?.contiguous()?,
                v: kv.v.narrow(2, 0, kv.len)?.contiguous()?,
                rows: fanned.iter().map(|&r| r as u32).collect(),
            });
            kv.k = Tensor::zeros((b * n, h, own_cap, d), kv.k.dtype(), kv.k.device())?;
            kv.v = Tensor::zeros((b * n, h, own_cap, d), kv.v.dtype(), kv.v.device())?;
            kv.len = 0;
        }
        self.select_row_state(&fanned);
        Ok(())
    }

    /// The mask and next position of the given rows, in that order.
    fn select_row_state(&mut self, rows: &[usize]) {
        self.mask = rows.iter().map(|&r| self.mask[r].clone()).collect();
        self.next_pos = rows.iter().map(|&r| self.next_pos[r]).collect();
    }
}

/// Converts a `[B, T]` mask tensor (any integer or float dtype, 1 = token, 0 = padding) to rows.
pub(super) fn mask_rows(mask: &Tensor) -> Result<Vec<Vec<u8>>> {
    let m = mask.to_dtype(DType::F32)?.to_vec2::<f32>()?;
    Ok(m.into_iter()
        .map(|r| r.into_iter().map(|x| u8::from(x != 0.0)).collect())
        .collect())
}

/// Keys (rotated) and values of a prefix that every row of a forward pass shares, computed once
/// with batch 1, in the layout of the attention path that made them.
#[derive(Debug, Clone)]
pub(super) struct SharedKv {
    pub(super) k: Tensor,
    pub(super) v: Tensor,
}

/// Where a layer's attention gets its keys and values besides the call's own tokens.
pub(super) enum KvUse<'a> {
    /// The call's own tokens only.
    Own,
    /// An inference cache (appended to), its initial capacity, and the real tokens of a padded
    /// call when the layer's row-wise parts run on them alone.
    Cache(&'a mut Option<LayerKv>, usize, Option<&'a RealRows>),
    /// The call is the shared prefix: keep its keys and values for [`KvUse::After`].
    Record(&'a mut Option<SharedKv>),
    /// The call continues a shared prefix: attend to it first (its gradient flows back to it).
    After(&'a SharedKv),
}

/// The real (unpadded) positions of a left-padded `[B, T]` call: a prefill's projections, norms
/// and MLPs run on these `N` rows only (`[1, N, F]`), and attention sees them at their padded
/// places. Padded rows are ~10% of a batch of ReCode prompts; their keys and values are masked, so
/// zeros stand in for them.
#[derive(Debug, Clone)]
pub(super) struct RealRows {
    index: Tensor,
    pub(super) batch: usize,
    pub(super) len: usize,
}

impl RealRows {
    /// The real positions of `mask` (`[B][T]`, 1 = token), or `None` without padding.
    pub(super) fn of(mask: &[Vec<u8>], device: &candle_core::Device) -> Result<Option<Self>> {
        let len = mask.first().map_or(0, Vec::len);
        if mask.iter().all(|r| r.iter().all(|&m| m != 0)) {
            return Ok(None);
        }
        let index: Vec<u32> = mask
            .iter()
            .enumerate()
            .flat_map(|(r, row)| {
                row.iter()
                    .enumerate()
                    .filter(|(_, &m)| m != 0)
                    .map(move |(j, _)| (r * len + j) as u32)
            })
            .collect();
        Ok(Some(Self {
            index: Tensor::new(index.as_slice(), device)?,
            batch: mask.len(),
            len,
        }))
    }

    /// `[B, T, F]` → the real rows `[1, N, F]`.
    pub(super) fn gather(&self, x: &Tensor) -> Result<Tensor> {
        let f = x.dim(2)?;
        Ok(x.reshape((self.batch * self.len, f))?
            .index_select(&self.index, 0)?
            .unsqueeze(0)?)
    }

    /// The real rows `[1, N, F]` → `[B, T, F]`, zeros at the padded places.
    pub(super) fn scatter(&self, x: &Tensor) -> Result<Tensor> {
        let f = x.dim(2)?;
        let zeros = Tensor::zeros((self.batch * self.len, f), x.dtype(), x.device())?;
        Ok(zeros
            .index_add(&self.index, &x.squeeze(0)?, 0)?
            .reshape((self.batch, self.len, f))?)
    }
}
