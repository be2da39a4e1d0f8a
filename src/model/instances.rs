//! Bundles shared between streams: elements that name the same `model-instance-id` use one
//! loaded bundle (one copy in memory, one warm-up, the process's one libtorch queue), which is
//! freed with its last user. Each user is a member with a slot, which the keyframe schedule
//! uses to spread the members' keyframes over the interval.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::Instant;

use tch::Device;

use super::bundle::Bundle;
use super::error::ModelError;

/// One loaded bundle and the streams that use it.
#[derive(Debug)]
pub struct Instance {
    id: String,
    /// The `model=` and device it was loaded with: later members must ask for the same.
    spec: String,
    device: Device,
    bundle: Arc<Bundle>,
    /// Member ids in joining order; a member's slot is its position.
    members: Mutex<Vec<u64>>,
    /// The members' common time origin for staggering keyframes.
    epoch: Instant,
}

/// A stream's use of an [`Instance`]; leaving (drop) frees the slot, and the bundle with the
/// last member.
#[derive(Debug)]
pub struct Membership {
    instance: Arc<Instance>,
    member: u64,
}

static INSTANCES: LazyLock<Mutex<HashMap<String, Weak<Instance>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));
static NEXT_MEMBER: AtomicU64 = AtomicU64::new(0);
/// Bundles loaded per instance id, for the record.
static LOADS: LazyLock<Mutex<HashMap<String, usize>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// Joins the instance `id`, loading `spec` on `device` with `load` when no live instance has
/// that id. An instance of that id loaded with another bundle or device is an error: one id
/// names one model.
pub fn join(
    id: &str,
    spec: &str,
    device: Device,
    load: impl FnOnce() -> Result<Bundle, ModelError>,
) -> Result<Membership, ModelError> {
    // Held through a load, so that two elements starting together load once.
    let mut instances = INSTANCES.lock().unwrap_or_else(|e| e.into_inner());
    instances.retain(|_, weak| weak.strong_count() > 0);
    let instance = match instances.get(id).and_then(Weak::upgrade) {
        Some(instance) => {
            if instance.spec != spec || instance.device != device {
                return Err(ModelError::InstanceMismatch {
                    id: id.to_string(),
                    has: format!("{} on {:?}", instance.spec, instance.device),
                    wanted: format!("{spec} on {device:?}"),
                });
            }
            instance
        }
        None => {
            let bundle = load()?;
            *LOADS
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(id.to_string())
                .or_default() += 1;
            let instance = Arc::new(Instance {
                id: id.to_string(),
                spec: spec.to_string(),
                device,
                bundle: Arc::new(bundle),
                members: Mutex::new(Vec::new()),
                epoch: Instant::now(),
            });
            instances.insert(id.to_string(), Arc::downgrade(&instance));
            instance
        }
    };
    let member = NEXT_MEMBER.fetch_add(1, Ordering::Relaxed);
    instance.lock_members().push(member);
    Ok(Membership { instance, member })
}

/// How many times [`join`] has loaded a bundle for instance `id` in this process.
pub fn loads(id: &str) -> usize {
    LOADS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(id)
        .copied()
        .unwrap_or(0)
}

/// The ids of the instances alive now, with their member counts.
pub fn live() -> Vec<(String, usize)> {
    let instances = INSTANCES.lock().unwrap_or_else(|e| e.into_inner());
    let mut out: Vec<(String, usize)> = instances
        .values()
        .filter_map(Weak::upgrade)
        .map(|i| (i.id.clone(), i.lock_members().len()))
        .collect();
    out.sort();
    out
}

impl Instance {
    fn lock_members(&self) -> std::sync::MutexGuard<'_, Vec<u64>> {
        self.members.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Membership {
    pub fn bundle(&self) -> &Arc<Bundle> {
        &self.instance.bundle
    }

    pub fn id(&self) -> &str {
        &self.instance.id
    }

    /// This member's slot and the number of members now: (slot, members).
    pub fn slot(&self) -> (usize, usize) {
        let members = self.instance.lock_members();
        let slot = members
            .iter()
            .position(|&m| m == self.member)
            .expect("a member is listed until it leaves");
        (slot, members.len())
    }

    /// The members' common time origin.
    pub fn epoch(&self) -> Instant {
        self.instance.epoch
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.instance.lock_members().retain(|&m| m != self.member);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn espnet() -> Result<Bundle, ModelError> {
        Bundle::load_with_warmup(super::super::DEFAULT_BUNDLE, Device::Cpu, 0)
    }

    #[test]
    fn one_id_loads_once_and_frees_with_its_last_member() {
        let a = join("test-shared", "camvid-espnet", Device::Cpu, espnet).unwrap();
        let b = join("test-shared", "camvid-espnet", Device::Cpu, || {
            panic!("a second load for the same id")
        })
        .unwrap();
        assert_eq!(loads("test-shared"), 1);
        assert!(Arc::ptr_eq(a.bundle(), b.bundle()));
        assert_eq!((a.slot(), b.slot()), ((0, 2), (1, 2)));
        let weak = Arc::downgrade(a.bundle());
        drop(a);
        assert_eq!(b.slot(), (0, 1), "the slots close up");
        drop(b);
        assert!(weak.upgrade().is_none(), "freed with the last member");
        assert!(!live().iter().any(|(id, _)| id == "test-shared"));
    }

    #[test]
    fn an_id_names_one_model() {
        let _a = join("test-mismatch", "camvid-espnet", Device::Cpu, espnet).unwrap();
        let err = join("test-mismatch", "camvid-cgnet", Device::Cpu, || {
            panic!("must not load")
        })
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("test-mismatch") && err.contains("camvid-cgnet"),
            "{err}"
        );
    }
}
