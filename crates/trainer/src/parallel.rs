//! Data-parallel training with burn's collective operations: every device holds a
//! [`Replica`], takes a contiguous slice of each batch, and the slices' gradients are summed
//! with an all-reduce, so that every replica takes the same optimizer step.
//!
//! Each slice's loss is its share of the whole batch's mean ([`Whole`]), so the sum is the
//! gradient of the whole batch on one device, to float rounding. A step runs in two phases,
//! each on one thread per replica: the gradients (which may fail, on a bad grid read), then,
//! only when every replica has its gradients, the all-reduce and the update. A failure thus
//! ends the step with its message instead of leaving the other peers waiting in the
//! all-reduce.
//!
//! burn's collective runs on every backend: on the CPU, whose one device can be named more
//! than once, the replicas share the cores (a test of the arithmetic, not a speed-up); on
//! CUDA each replica has its own GPU.

use std::marker::PhantomData;
use std::ops::Range;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread;

use anyhow::{Result, anyhow};
use burn::collective::{CollectiveConfig, PeerId, ReduceOperation, register, reset_collective};
use burn::optim::GradientsParams;
use burn::tensor::backend::Backend;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::data::Dataset;
use crate::replica::Replica;
use crate::step::{StepLoss, Whole, Work};

/// burn keeps one collective per backend type in a process: one data-parallel run at a time.
static COLLECTIVE: Mutex<()> = Mutex::new(());

/// The replicas' registration with burn's collective, for as long as the run lasts.
pub struct Peers<B: Backend> {
    _held: MutexGuard<'static, ()>,
    backend: PhantomData<B>,
}

impl<B: Backend> Peers<B> {
    /// Registers one peer per device (on its own thread, as burn's registration waits for
    /// all of them).
    pub fn register(devices: &[B::Device]) -> Result<Self> {
        let held = COLLECTIVE.lock().unwrap_or_else(PoisonError::into_inner);
        reset_collective::<B>();
        let config = CollectiveConfig::default().with_num_devices(devices.len());
        thread::scope(|scope| {
            let peers: Vec<_> = devices
                .iter()
                .enumerate()
                .map(|(peer, device)| {
                    let config = config.clone();
                    scope.spawn(move || register::<B>(peer_id(peer), device.clone(), config))
                })
                .collect();
            peers
                .into_iter()
                .enumerate()
                .try_for_each(|(peer, joined)| {
                    joined
                        .join()
                        .map_err(|_| {
                            anyhow!("registering device {peer} for data-parallel training panicked")
                        })?
                        .map_err(|e| {
                            anyhow!("registering device {peer} for data-parallel training: {e:?}")
                        })
                })
        })?;
        Ok(Self {
            _held: held,
            backend: PhantomData,
        })
    }
}

impl<B: Backend> Drop for Peers<B> {
    fn drop(&mut self) {
        reset_collective::<B>();
    }
}

fn peer_id(replica: usize) -> PeerId {
    PeerId::from(replica)
}

/// Captions `0..n` in `parts` contiguous slices whose sizes differ by at most one, the
/// longer ones first; a slice is empty when there are fewer captions than parts.
pub fn slices(n: usize, parts: usize) -> Vec<Range<usize>> {
    let (size, longer) = (n / parts, n % parts);
    let mut start = 0;
    (0..parts)
        .map(|part| {
            let end = start + size + usize::from(part < longer);
            let slice = start..end;
            start = end;
            slice
        })
        .collect()
}

/// One optimizer step of every replica on `work`, each on its slice, with dropout drawn
/// from a generator seeded from `rng` per replica.
pub fn descend<B: Backend>(
    replicas: Vec<Replica<B>>,
    data: &Dataset,
    work: &Work,
    learning_rate: f64,
    rng: Option<&mut ChaCha8Rng>,
    clip_norm: f64,
) -> (Vec<Replica<B>>, StepLoss) {
    let (reduced, step) = reduced_gradients(replicas, data, work, rng);
    let replicas = on_threads(reduced.into_iter(), |(replica, grads)| {
        replica.update(grads, learning_rate, clip_norm)
    });
    (replicas, step)
}

/// Every replica with the gradient of the whole of `work`: each computes its slice's share,
/// then the all-reduce sums the shares on every device.
pub fn reduced_gradients<B: Backend>(
    replicas: Vec<Replica<B>>,
    data: &Dataset,
    work: &Work,
    rng: Option<&mut ChaCha8Rng>,
) -> (Vec<(Replica<B>, GradientsParams)>, StepLoss) {
    let whole = Whole {
        tokens: work.tokens(),
        captions: work.captions.len(),
    };
    let parts = slices(work.captions.len(), replicas.len());
    let rngs: Vec<Option<ChaCha8Rng>> = match rng {
        Some(rng) => parts
            .iter()
            .map(|_| Some(ChaCha8Rng::seed_from_u64(rng.next_u64())))
            .collect(),
        None => parts.iter().map(|_| None).collect(),
    };
    let shares: Vec<(Replica<B>, f64, GradientsParams)> = on_threads(
        replicas.into_iter().zip(parts).zip(rngs),
        |((replica, part), mut rng)| {
            let (loss, grads) = share(&replica, data, work, part, whole, rng.as_mut());
            (replica, loss, grads)
        },
    );
    let loss = shares.iter().map(|(_, loss, _)| loss).sum();
    let sizes: Vec<usize> = shares.iter().map(|(_, _, grads)| grads.len()).collect();
    assert!(
        sizes.iter().all(|&n| n == sizes[0]),
        "the replicas have gradients for different numbers of parameters ({sizes:?}): the \
         all-reduce would wait forever"
    );
    let reduced = on_threads(
        shares.into_iter().enumerate(),
        |(peer, (replica, _, grads))| {
            let grads = grads
                .all_reduce::<B>(peer_id(peer), ReduceOperation::Sum)
                .unwrap_or_else(|e| {
                    // Releases the peers already waiting, which then fail too.
                    reset_collective::<B>();
                    panic!("the all-reduce of device {peer}'s gradients failed: {e:?}")
                });
            (replica, grads)
        },
    );
    let step = StepLoss {
        loss,
        tokens: whole.tokens,
    };
    (reduced, step)
}

/// A replica's share of the gradient: that of its slice of `work` as a part of `whole`, or
/// zeros for every parameter when it has no slice (a batch smaller than the devices), so that
/// every peer has the same gradients to all-reduce.
fn share<B: Backend>(
    replica: &Replica<B>,
    data: &Dataset,
    work: &Work,
    part: Range<usize>,
    whole: Whole,
    rng: Option<&mut ChaCha8Rng>,
) -> (f64, GradientsParams) {
    if part.is_empty() {
        return (0.0, replica.zero_gradients(data, work));
    }
    replica.gradients(data, &work.part(part), Some(whole), rng)
}

/// `job` on each item, one thread per item, results in item order. A panicking job's panic
/// resumes here once every thread has ended.
fn on_threads<T: Send, R: Send>(
    items: impl Iterator<Item = T>,
    job: impl Fn(T) -> R + Sync,
) -> Vec<R> {
    let job = &job;
    thread::scope(|scope| {
        let running: Vec<_> = items.map(|item| scope.spawn(move || job(item))).collect();
        let ended: Vec<_> = running.into_iter().map(|t| t.join()).collect();
        ended
            .into_iter()
            .map(|result| result.unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_cover_the_batch_in_order_with_sizes_within_one() {
        assert_eq!(slices(10, 3), [0..4, 4..7, 7..10]);
        assert_eq!(slices(4, 2), [0..2, 2..4]);
        assert_eq!(slices(2, 3), [0..1, 1..2, 2..2]);
        assert_eq!(slices(5, 1), vec![Range { start: 0, end: 5 }]);
    }
}
