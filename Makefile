# ImageCaptioning: every stage is a file target, so `make train` reruns only what changed.
# `make -n train` prints the plain commands; each can be run by hand in this order.
#
#   make demo      synthetic data end to end (no downloads), prints metrics and the report path
#   make train     full Flickr8k reproduction from data/flickr8k and data/weights
#   make test      the test suite (what CI runs)
#   make bench     featurizer, trainer and METEOR speed next to PyTorch and the METEOR jar
#   make meteor-data  METEOR's data files (from the pycocoevalcap wheel) into data/meteor/
#
# A stage reruns when its binary, its input files or its own config sections change: each
# stage depends on a stamp (WORK/.config/STAGE.json) rewritten only when those sections do.

CONFIG  ?= pipeline.toml
DATASET ?= data/flickr8k
WORK    ?= data/work
WEIGHTS ?= data/weights/resnet50-0676ba61.pth
SET     ?=
CARGO   ?= cargo
# Cargo features of the burn binaries, e.g. FEATURES=cuda.
FEATURES ?=
# Where cargo puts the binaries: honours a CARGO_TARGET_DIR set in the environment.
BIN     := $(or $(CARGO_TARGET_DIR),target)/release

# The demo: the synthetic dataset, ImageNet weights when `make weights` fetched them.
DEMO_DATASET := data/synthetic
DEMO_WORK    := data/demo
DEMO_WEIGHTS := $(if $(wildcard $(WEIGHTS)),$(WEIGHTS),random)
# The demo's data (60 words, 1,200 training images) needs no 512-wide Transformer: with
# `model.decoder=transformer` it trains one of width 256 (README: the Transformer).
DEMO_SET     ?= --set tokenizer.min_count=1 --set model.transformer.d_model=256 \
                --set model.transformer.feed_forward=1024

FLAGS    = --config $(CONFIG) --work-dir $(WORK) $(SET)
BINARIES := synth cleaner featurizer tokenizer trainer evaluator caption
BURN_BINARIES := featurizer trainer evaluator caption
STAMPS   := $(WORK)/.config
comma    := ,

.PHONY: all demo train weights meteor-data test check bench report synth captions features tokens \
        model evaluate check-flickr8k clean-demo FORCE
all: $(addprefix $(BIN)/,$(BINARIES))

# One cargo call builds every binary (the same feature set as `make test`, so nothing is
# rebuilt back and forth); a binary cargo leaves untouched does not rerun later stages.
$(addprefix $(BIN)/,$(BINARIES)) &: FORCE
	$(CARGO) build --release --locked --workspace --bins $(if $(FEATURES),--features $(subst $(eval) ,$(comma),$(foreach b,$(BURN_BINARIES),$(b)/$(FEATURES))))

# What each stage reads of the config (whole sections, or single keys of another stage's
# section); the stamp file changes only when one of them does. tests/stamps.rs checks each
# list both ways: a key in it reruns the stage, a key outside it does not. Paths given as
# make variables (DATASET, WORK, WEIGHTS) are file dependencies instead.
synth_SECTIONS      := synth
cleaner_SECTIONS    := cleaner,paths.splits_dir
featurizer_SECTIONS := featurizer,model.decoder
tokenizer_SECTIONS  := tokenizer
trainer_SECTIONS    := model,trainer,evaluator.max_len,evaluator.suppress_unk
evaluator_SECTIONS  := evaluator
$(STAMPS)/%.json: $(BIN)/cleaner FORCE
	@mkdir -p $(@D)
	@$(BIN)/cleaner --config $(CONFIG) $(SET) --print-config $($*_SECTIONS) > $@.new
	@cmp -s $@.new $@ && rm $@.new || mv $@.new $@

# ---- stages ---------------------------------------------------------------------------
synth: $(DEMO_DATASET)/captions.txt
$(DEMO_DATASET)/captions.txt: $(BIN)/synth $(STAMPS)/synth.json
	$(BIN)/synth --config $(CONFIG) --out $(DEMO_DATASET) --force $(SET)

captions: $(WORK)/captions.parquet
$(WORK)/captions.parquet: $(BIN)/cleaner $(STAMPS)/cleaner.json $(wildcard $(DATASET)/*.txt $(DATASET)/*/*.txt $(DATASET)/*.json)
	$(BIN)/cleaner --dataset-dir $(DATASET) $(FLAGS)

# --force: parts made with other settings (new weights) are recomputed, finished ones kept.
features: $(WORK)/features/_SUCCESS
$(WORK)/features/_SUCCESS: $(BIN)/featurizer $(STAMPS)/featurizer.json $(WORK)/captions.parquet $(wildcard $(WEIGHTS))
	$(BIN)/featurizer --force --weights $(WEIGHTS) $(FLAGS)

tokens: $(WORK)/tokens.parquet
$(WORK)/tokens.parquet: $(BIN)/tokenizer $(STAMPS)/tokenizer.json $(WORK)/captions.parquet
	$(BIN)/tokenizer $(FLAGS)

# --resume continues an interrupted run; it refuses a checkpoint from other inputs, so it is
# only passed when the last checkpoint is newer than the inputs.
model: $(WORK)/model/_SUCCESS
$(WORK)/model/_SUCCESS: $(BIN)/trainer $(STAMPS)/trainer.json $(WORK)/tokens.parquet $(WORK)/features/_SUCCESS $(wildcard $(WORK)/grid/_SUCCESS)
	$(BIN)/trainer $(if $(shell [ $(WORK)/model/last.mpk -nt $(WORK)/tokens.parquet ] && [ $(WORK)/model/last.mpk -nt $(WORK)/features/_SUCCESS ] && [ $(WORK)/model/last.mpk -nt $(STAMPS)/trainer.json ] && echo y),--resume) $(FLAGS)

# METEOR's data (make meteor-data) adds METEOR: new data reruns the evaluator.
evaluate: $(WORK)/eval/metrics.json
$(WORK)/eval/metrics.json: $(BIN)/evaluator $(STAMPS)/evaluator.json $(WORK)/model/_SUCCESS $(wildcard data/meteor/MANIFEST)
	$(BIN)/evaluator $(FLAGS)

report: evaluate

# ---- the two front doors ---------------------------------------------------------------
train: check-flickr8k
	$(MAKE) --no-print-directory report
	$(BIN)/evaluator show --work-dir $(WORK)

check-flickr8k:
	@scripts/check-flickr8k.sh "$(DATASET)" "$(WEIGHTS)"

demo: $(BIN)/synth
	@[ "$(DEMO_WEIGHTS)" = random ] && echo "demo: no ImageNet weights at $(WEIGHTS) (make weights): using seeded RANDOM ResNet50 weights" || true
	$(MAKE) --no-print-directory synth report WORK=$(DEMO_WORK) DATASET=$(DEMO_DATASET) WEIGHTS=$(DEMO_WEIGHTS) SET="$(DEMO_SET) $(SET)"
	$(BIN)/evaluator show --work-dir $(DEMO_WORK)

clean-demo:
	rm -rf $(DEMO_WORK) $(DEMO_DATASET)

# ---- weights ---------------------------------------------------------------------------
weights: data/weights/resnet50-0676ba61.pth
data/weights/resnet50-0676ba61.pth:
	scripts/fetch-weights.sh $@

# ---- METEOR data -----------------------------------------------------------------------
# pip downloads the pinned pycocoevalcap wheel; the files the scorer needs are extracted and
# checked (sizes, SHA-256). Cheap when data/meteor/ is already complete.
meteor-data:
	python3 scripts/meteor_data.py --out data/meteor

# ---- checks ----------------------------------------------------------------------------
test:
	scripts/test.sh

# Clippy with the CUDA features on: one pass lints every target and keeps the CUDA build
# compiling. The features only add code, but for the arm that refuses `cuda` on a CPU build
# (crates/models/src/backend.rs), which `make test`'s build compiles.
check:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release --workspace --all-targets --locked \
	  --features featurizer/cuda,trainer/cuda,evaluator/cuda,caption/cuda -- -D warnings

bench: all meteor-data
	python3 scripts/bench.py
