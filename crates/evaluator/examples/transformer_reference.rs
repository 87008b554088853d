//! A trained Transformer and a split of its data, written for `scripts/transformer_reference.py`
//! to check in PyTorch: the same teacher-forced logits (on each image's first reference
//! caption) and the same greedy captions.
//!
//!     cargo run --release -p evaluator --example transformer_reference -- data/demo out/
//!     python3 scripts/transformer_reference.py out/
//!
//! Optional third and fourth arguments: the split (`test`) and the longest caption (`20`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use burn::backend::Flex;
use burn::tensor::{Int, Tensor, TensorData};
use contracts::WorkDir;
use contracts::grid::GridStore;
use contracts::tables::{TokensTable, read};
use contracts::vocab::PAD;
use decoder::{Captioner, load_captioner};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [work, out, ..] = args.as_slice() else {
        bail!("usage: transformer_reference WORK_DIR OUT_DIR [SPLIT] [MAX_LEN]");
    };
    let split_name = args.get(2).map_or("test", String::as_str);
    let Some(split) = contracts::Split::parse(split_name) else {
        bail!("split {split_name:?}: expected train, val or test");
    };
    let max_len: usize = args.get(3).map_or(Ok(20), |n| n.parse())?;
    let work = WorkDir::new(PathBuf::from(work));
    let device = Default::default();
    let trained = load_captioner::<Flex>(&work, &device)?;
    let Captioner::Transformer(model) = &trained.model else {
        bail!(
            "{} holds a {} model, not a transformer",
            work.root().display(),
            trained.info.model.kind()
        );
    };
    // Each image's first caption, in image order.
    let (rows, _) = read::<TokensTable>(&work.tokens())?;
    let mut first: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for row in rows.into_iter().filter(|r| r.split == split) {
        first.entry(row.image).or_insert(row.token_ids);
    }
    let images: Vec<String> = first.keys().cloned().collect();
    let store = GridStore::build(&work.grid(), &images, work.root())
        .context("the transformer's grid features")?;
    let shape = store.shape();
    let all: Vec<usize> = (0..images.len()).collect();
    let grid = Tensor::<Flex, 3>::from_data(
        TensorData::new(
            store.read(&all)?,
            [images.len(), shape.regions(), shape.channels],
        ),
        &device,
    );
    // Inputs `<start> w1 .. wn`, padded.
    let steps = first.values().map(|t| t.len() - 1).max().unwrap_or(1);
    let mut tokens = vec![i64::from(PAD); images.len() * steps];
    for (row, ids) in first.values().enumerate() {
        for (t, &id) in ids[..ids.len() - 1].iter().enumerate() {
            tokens[row * steps + t] = i64::from(id);
        }
    }
    let tokens =
        Tensor::<Flex, 2, Int>::from_data(TensorData::new(tokens, [images.len(), steps]), &device);
    decoder::transformer::write_reference_check(model, grid, tokens, max_len, &PathBuf::from(out))?;
    println!("{} {split} images written to {out}", images.len());
    Ok(())
}
