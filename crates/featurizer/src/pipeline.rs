//! The featurizing pipeline: a decoding thread (rayon inside) one batch ahead of the network,
//! through a bounded channel, and the network thread that fills and writes the parts.
//!
//! Memory stays bounded by the batch size whatever the dataset size. Faults end the run
//! instead of hanging it: when the network side fails (a write on a full disk, say) it drops
//! its end of the channel, so the decoding thread's next send fails and it stops; a decoder
//! that panics on one image costs that image (skipped and named, like an unreadable one), and
//! a decoding thread that dies anyway is reported as an error, not taken for the end of the
//! list.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::Instant;

use anyhow::{Result, anyhow, bail};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use contracts::grid::{GridShape, Grids};
use contracts::tables::{FEATURE_DIM, Features};
use rayon::prelude::*;

use crate::Summary;
use crate::images::ImageList;
use crate::parts::Part;

/// Why one image has no features: its name and the reason, as reported to the user.
pub type Skip = (String, String);

/// How one image becomes network input: `[3, side, side]` values, or why it cannot.
pub trait LoadImage: Fn(&Path) -> Result<Vec<f32>, String> + Sync {}
impl<F: Fn(&Path) -> Result<Vec<f32>, String> + Sync> LoadImage for F {}

/// Writes one finished part (its grids too, when the network gives them) and the images it
/// had to skip.
pub trait WritePart: FnMut(&Part, &Features, Option<&Grids>, &[Skip]) -> Result<()> {}
impl<F: FnMut(&Part, &Features, Option<&Grids>, &[Skip]) -> Result<()>> WritePart for F {}

/// The network: `[N, 3, side, side]` images -> `[N, 2048]` pooled features and, when the grid
/// is wanted, the feature map they pool, `[N, 2048, h, w]`.
pub trait Network<B: Backend>:
    Fn(Tensor<B, 4>) -> (Tensor<B, 2>, Option<Tensor<B, 4>>) + Sync
{
}
impl<B: Backend, F: Fn(Tensor<B, 4>) -> (Tensor<B, 2>, Option<Tensor<B, 4>>) + Sync> Network<B>
    for F
{
}

/// One batch's network output on the host: `[N * 2048]` pooled values and the grids.
struct Output {
    pooled: Vec<f32>,
    grid: Option<(GridShape, Vec<f32>)>,
}

/// What the pipeline needs besides the network.
pub struct Plan<'a> {
    pub list: &'a ImageList,
    /// The parts to compute, in order.
    pub todo: &'a [Part],
    pub batch_size: usize,
    /// Side of the square network input.
    pub side: usize,
    /// Whether to run each batch as two half-batches at once ([`run_network`]).
    pub halves: bool,
}

/// One decoded batch on its way from the decoding thread to the network.
struct Batch {
    /// Index into [`Plan::todo`].
    part: usize,
    names: Vec<String>,
    pixels: Vec<Result<Vec<f32>, String>>,
}

/// Decodes every batch of every part in order and sends it; stops when the receiver is gone.
fn decode_batches(plan: &Plan<'_>, load: &impl LoadImage, sender: SyncSender<Batch>) {
    for (slot, part) in plan.todo.iter().enumerate() {
        for chunk in plan.list.names[part.range.clone()].chunks(plan.batch_size) {
            let pixels = chunk
                .par_iter()
                .map(|name| load_guarded(load, &plan.list.dir.join(name)))
                .collect();
            let batch = Batch {
                part: slot,
                names: chunk.to_vec(),
                pixels,
            };
            if sender.send(batch).is_err() {
                return;
            }
        }
    }
}

/// `load`, with a panic of the decoder turned into that image's reason for being skipped.
fn load_guarded(load: &impl LoadImage, path: &Path) -> Result<Vec<f32>, String> {
    catch_unwind(AssertUnwindSafe(|| load(path))).unwrap_or_else(|panic| {
        Err(format!(
            "the image decoder failed: {}",
            panic_message(&*panic)
        ))
    })
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// Runs the network over the parts of `plan`, writing each part as it completes.
pub fn run<B: Backend>(
    plan: &Plan<'_>,
    load: impl LoadImage,
    mut write: impl WritePart,
    forward: impl Network<B>,
    device: &B::Device,
    summary: &mut Summary,
    progress: &indicatif::ProgressBar,
) -> Result<()> {
    let (sender, receiver) = sync_channel::<Batch>(1);
    std::thread::scope(|scope| {
        let decoder = scope.spawn(|| decode_batches(plan, &load, sender));
        // `receiver` moves into `consume` and is dropped when it returns, error or not, so a
        // decoding thread blocked on a full channel wakes up and stops.
        let consumed = consume(
            plan, receiver, &mut write, &forward, device, summary, progress,
        );
        let decoded = decoder.join().map_err(|panic| {
            anyhow!(
                "the image decoding thread failed: {}",
                panic_message(&*panic)
            )
        });
        consumed.and(decoded)
    })
}

/// The part being filled.
struct OpenPart {
    slot: usize,
    features: Features,
    grids: Option<Grids>,
    skipped: Vec<Skip>,
}

fn consume<B: Backend>(
    plan: &Plan<'_>,
    receiver: Receiver<Batch>,
    write: &mut impl WritePart,
    forward: &impl Network<B>,
    device: &B::Device,
    summary: &mut Summary,
    progress: &indicatif::ProgressBar,
) -> Result<()> {
    let mut current: Option<OpenPart> = None;
    let mut finish = |open: OpenPart, summary: &mut Summary| -> Result<()> {
        let written = Instant::now();
        write(
            &plan.todo[open.slot],
            &open.features,
            open.grids.as_ref(),
            &open.skipped,
        )?;
        summary.write += written.elapsed();
        summary.written_parts += 1;
        summary.skipped.extend(open.skipped);
        Ok(())
    };
    loop {
        let waited = Instant::now();
        let Ok(batch) = receiver.recv() else { break };
        summary.wait_decode += waited.elapsed();
        if let Some(open) = current.take_if(|open| open.slot != batch.part) {
            finish(open, summary)?;
        }
        let open = current.get_or_insert_with(|| OpenPart {
            slot: batch.part,
            features: Features::default(),
            grids: None,
            skipped: Vec::new(),
        });
        progress.inc(batch.names.len() as u64);
        let mut good = Vec::with_capacity(batch.names.len() * 3 * plan.side * plan.side);
        let mut names = Vec::with_capacity(batch.names.len());
        for (name, pixels) in batch.names.into_iter().zip(batch.pixels) {
            match pixels {
                Ok(pixels) => {
                    good.extend_from_slice(&pixels);
                    names.push(name);
                }
                Err(reason) => {
                    progress.suspend(|| tracing::warn!("skipped {name}: {reason}"));
                    open.skipped.push((name, reason));
                }
            }
        }
        if names.is_empty() {
            continue;
        }
        let ran = Instant::now();
        let output = run_network(forward, good, names.len(), plan, device)?;
        summary.network += ran.elapsed();
        if output.pooled.len() != names.len() * FEATURE_DIM {
            bail!(
                "the network produced {} values for {} images, expected {FEATURE_DIM} each",
                output.pooled.len(),
                names.len()
            );
        }
        if let Some((shape, grid)) = output.grid {
            let grids = open.grids.get_or_insert_with(|| Grids::new(shape));
            grids.images.extend(names.iter().cloned());
            grids.values.extend_from_slice(&grid);
        }
        summary.featurized += names.len();
        open.features.images.extend(names);
        open.features.features.extend_from_slice(&output.pooled);
    }
    match current {
        Some(open) => finish(open, summary),
        None => Ok(()),
    }
}

/// Runs the network on a batch, with [`Plan::halves`] as two half-batches at once: while one
/// half is in an operation the backend runs on a single thread (elementwise work, pooling),
/// the other keeps the remaining cores busy. Returns the outputs in image order.
fn run_network<B: Backend>(
    forward: &impl Network<B>,
    pixels: Vec<f32>,
    images: usize,
    plan: &Plan,
    device: &B::Device,
) -> Result<Output> {
    let side = plan.side;
    let values = |t: TensorData| {
        t.into_vec::<f32>()
            .map_err(|e| anyhow!("reading features: {e:?}"))
    };
    let run = |pixels: Vec<f32>, n: usize| -> Result<Output> {
        let input = Tensor::<B, 4>::from_data(TensorData::new(pixels, [n, 3, side, side]), device);
        let (pooled, map) = forward(input);
        let grid = match map {
            Some(map) => {
                let [_, channels, height, width] = map.dims();
                let shape = GridShape {
                    channels,
                    height,
                    width,
                };
                Some((shape, values(map.into_data())?))
            }
            None => None,
        };
        Ok(Output {
            pooled: values(pooled.into_data())?,
            grid,
        })
    };
    if images < 2 || !plan.halves {
        return run(pixels, images);
    }
    let first = images / 2;
    let mut pixels = pixels;
    let second_pixels = pixels.split_off(first * 3 * side * side);
    let (a, b) = std::thread::scope(|scope| {
        let second = scope.spawn(|| run(second_pixels, images - first));
        let a = run(pixels, first);
        (
            a,
            second
                .join()
                .unwrap_or_else(|_| Err(anyhow!("the network thread panicked"))),
        )
    });
    let (mut out, b) = (a?, b?);
    out.pooled.extend(b.pooled);
    if let (Some((_, grid)), Some((_, more))) = (&mut out.grid, b.grid) {
        grid.extend(more);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;
    use crate::parts::plan;

    type Cpu = models::backend::Cpu;

    /// A list of `n` images named `0.png` .. and its parts of two rows.
    fn list_and_parts(n: usize) -> (ImageList, Vec<Part>) {
        let list = ImageList {
            dir: PathBuf::from("images"),
            names: (0..n).map(|i| format!("{i}.png")).collect(),
            captions: None,
        };
        let parts = plan(Path::new("features"), n, 2).unwrap();
        (list, parts)
    }

    /// A stand-in network: each image's first pixel value, repeated.
    fn forward(images: Tensor<Cpu, 4>) -> (Tensor<Cpu, 2>, Option<Tensor<Cpu, 4>>) {
        let [n, ..] = images.dims();
        let pooled = images
            .narrow(1, 0, 1)
            .narrow(2, 0, 1)
            .narrow(3, 0, 1)
            .reshape([n, 1])
            .repeat_dim(1, FEATURE_DIM);
        (pooled, None)
    }

    /// Runs the pipeline on a thread; fails the test instead of hanging when it never ends.
    fn run_with_deadline(
        images: usize,
        load: impl LoadImage + Send + 'static,
        write: impl WritePart + Send + 'static,
    ) -> (Result<()>, Summary) {
        let (done, wait) = mpsc::channel();
        std::thread::spawn(move || {
            let (list, todo) = list_and_parts(images);
            let plan = Plan {
                list: &list,
                todo: &todo,
                batch_size: 1,
                side: 2,
                halves: true,
            };
            let mut summary = Summary::default();
            let result = run::<Cpu>(
                &plan,
                load,
                write,
                forward,
                &Default::default(),
                &mut summary,
                &indicatif::ProgressBar::hidden(),
            );
            let _ = done.send((result, summary));
        });
        wait.recv_timeout(Duration::from_secs(60))
            .expect("the pipeline hung instead of ending")
    }

    fn pixels(path: &Path) -> Result<Vec<f32>, String> {
        let stem = path.file_stem().unwrap().to_string_lossy();
        Ok(vec![stem.parse::<f32>().unwrap(); 12])
    }

    #[test]
    fn a_failing_writer_ends_the_run_with_its_error() {
        let (result, summary) = run_with_deadline(
            20,
            pixels,
            |part: &Part, _: &Features, _: Option<&Grids>, _: &[Skip]| {
                if part.index == 1 {
                    bail!(
                        "{}: No space left on device (os error 28)",
                        part.path.display()
                    )
                }
                Ok(())
            },
        );
        assert_eq!(
            result.unwrap_err().to_string(),
            "features/part-00001.parquet: No space left on device (os error 28)"
        );
        assert_eq!(summary.written_parts, 1);
    }

    #[test]
    fn a_decoder_panic_costs_only_its_image() {
        let written = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = written.clone();
        let (result, summary) = run_with_deadline(
            5,
            |path: &Path| {
                if path.ends_with("3.png") {
                    panic!("corrupt huffman table");
                }
                pixels(path)
            },
            move |part: &Part, features: &Features, _: Option<&Grids>, skipped: &[Skip]| {
                let firsts: Vec<f32> = (0..features.images.len())
                    .map(|i| features.row(i)[0])
                    .collect();
                record
                    .lock()
                    .unwrap()
                    .push((part.index, firsts, skipped.to_vec()));
                Ok(())
            },
        );
        result.unwrap();
        assert_eq!(summary.featurized, 4);
        let skip = (
            "3.png".to_string(),
            "the image decoder failed: corrupt huffman table".to_string(),
        );
        assert_eq!(
            *written.lock().unwrap(),
            [
                (0, vec![0.0, 1.0], vec![]),
                (1, vec![2.0], vec![skip]),
                (2, vec![4.0], vec![]),
            ]
        );
    }
}
