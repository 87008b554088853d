//! The pipeline stages, as errors name them and provenance records them.

/// A pipeline stage, with the Makefile target that reruns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Cleaner,
    Featurizer,
    Tokenizer,
    Trainer,
    Evaluator,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Cleaner => "cleaner",
            Stage::Featurizer => "featurizer",
            Stage::Tokenizer => "tokenizer",
            Stage::Trainer => "trainer",
            Stage::Evaluator => "evaluator",
        }
    }

    /// The `make` target that reruns this stage.
    pub fn make_target(self) -> &'static str {
        match self {
            Stage::Cleaner => "captions",
            Stage::Featurizer => "features",
            Stage::Tokenizer => "tokens",
            Stage::Trainer => "model",
            Stage::Evaluator => "evaluate",
        }
    }
}
