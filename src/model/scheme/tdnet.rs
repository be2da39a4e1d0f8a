//! `tdnet` (TDNet, CVPR 2020): shallow sub-networks run round robin, one per frame, with
//! attention propagation over the previous frames' memory. Module methods: `forward(img)` (one
//! step from a reset) and `step(img, slot, memory)`.

use tch::{IValue, Tensor};

use super::SchemeAdapter;
use crate::model::bundle::Bundle;
use crate::model::error::ModelError;
use crate::model::executor;

pub(crate) struct Tdnet;

impl SchemeAdapter for Tdnet {
    fn methods(&self) -> &'static [&'static str] {
        &["forward", "step"]
    }

    fn forward_method(&self) -> &'static str {
        "forward"
    }

    /// Steps from a reset and then with the previous step's memory until every sub-network has
    /// run with a memory (TorchScript optimises each path on its first calls, which would
    /// otherwise make the first frames slow); an empty memory is refused.
    fn warm_up(&self, bundle: &Bundle, passes: usize) -> Result<(), ModelError> {
        let (h, w) = bundle.manifest().native_size();
        let image = bundle.grey_image(h, w)?;
        for _ in 0..passes {
            let mut memory = Vec::new();
            for slot in 0..=bundle.manifest().subnetworks() {
                let (logits, features, next) = bundle.step(&image, slot, &memory)?;
                bundle.check_outputs("step", h, w, &logits, &features)?;
                if next.is_empty() {
                    return Err(bundle.contract_error(
                        "method 'step' returns an empty memory: the next frame would learn \
                         nothing from this one"
                            .into(),
                    ));
                }
                memory = next;
            }
        }
        Ok(())
    }
}

/// The call a `tdnet` bundle adds to [`Bundle::forward`].
impl Bundle {
    /// `tdnet`'s call for every frame: sub-network `slot` (frames since the last reset; the
    /// module takes it modulo `subnetworks`) on uint8 RGB `image`, attending to `memory` (empty
    /// after a reset, else what the previous step returned). Returns `(logits [1, K, H, W],
    /// features, memory for the next frame)`.
    pub fn step(
        &self,
        image: &Tensor,
        slot: u32,
        memory: &[Tensor],
    ) -> Result<(Tensor, Tensor, Vec<Tensor>), ModelError> {
        self.require_method("step")?;
        self.check_image(image)?;
        let image = image.shallow_clone();
        let memory: Vec<Tensor> = memory.iter().map(Tensor::shallow_clone).collect();
        executor::run(move || {
            let memory = memory
                .iter()
                .map(|t| self.on_device(t))
                .collect::<Result<Vec<_>, _>>()?;
            let inputs = vec![
                IValue::Tensor(self.on_device(&image)?),
                IValue::Int(i64::from(slot)),
                IValue::TensorList(memory),
            ];
            let bad = || {
                self.contract_error(
                    "method 'step' must return (logits, features, memory: List[Tensor])".into(),
                )
            };
            let IValue::Tuple(mut items) = self.call("step", inputs)? else {
                return Err(bad());
            };
            if items.len() != 3 {
                return Err(bad());
            }
            let memory = match items.pop() {
                Some(IValue::TensorList(list)) => list,
                Some(IValue::GenericList(list)) => list
                    .into_iter()
                    .map(|v| match v {
                        IValue::Tensor(t) => Ok(t),
                        _ => Err(bad()),
                    })
                    .collect::<Result<Vec<_>, _>>()?,
                _ => return Err(bad()),
            };
            let (logits, features) = self.pair("step", IValue::Tuple(items))?;
            Ok((logits, features, memory))
        })
    }
}
