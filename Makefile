# ImageCaptioning: every stage is a file target, so `make train` reruns only what changed.
# `make -n train` prints the plain commands; each can be run by hand in this order.
#
#   make demo      synthetic data end to end (no downloads), prints metrics and the report path
#   make train     full Flickr8k reproduction from data/flickr8k and data/weights
#   make test      the test suite (what CI runs)
#   make bench     featurizer and trainer throughput next to PyTorch

CONFIG  ?= pipeline.toml
DATASET ?= data/flickr8k
WORK    ?= data/work
WEIGHTS ?= data/weights/resnet50-0676ba61.pth
SET     ?=
CARGO   ?= cargo
FEATURES ?=
BIN     := target/release

# The demo: the synthetic dataset, ImageNet weights when `make weights` fetched them.
DEMO_DATASET := data/synthetic
DEMO_WORK    := data/demo
DEMO_WEIGHTS := $(if $(wildcard $(WEIGHTS)),$(WEIGHTS),random)
DEMO_SET     ?= --set tokenizer.min_count=1 --set trainer.epochs=20

STAGE_FLAGS = --config $(CONFIG) --work-dir $(WORK) $(SET)
BINARIES    := synth cleaner featurizer tokenizer trainer evaluator caption

.PHONY: check-flickr8k all demo train weights test check bench report synth captions features tokens model evaluate clean-demo FORCE
all: $(addprefix $(BIN)/,$(BINARIES))

# cargo decides what is stale; a binary it leaves untouched does not rerun later stages.
$(addprefix $(BIN)/,$(BINARIES)): FORCE
	$(CARGO) build --release --locked $(if $(FEATURES),--features $(FEATURES)) -p $(notdir $@)

# ---- stages ---------------------------------------------------------------------------
synth: $(DEMO_DATASET)/captions.txt
$(DEMO_DATASET)/captions.txt: $(BIN)/synth
	$(BIN)/synth --config $(CONFIG) --out $(DEMO_DATASET) --force $(SET)

captions: $(WORK)/captions.parquet
$(WORK)/captions.parquet: $(BIN)/cleaner $(CONFIG) $(wildcard $(DATASET)/*.txt $(DATASET)/*/*.txt $(DATASET)/*.json)
	$(BIN)/cleaner --dataset-dir $(DATASET) $(STAGE_FLAGS)

features: $(WORK)/features/_SUCCESS
$(WORK)/features/_SUCCESS: $(BIN)/featurizer $(WORK)/captions.parquet $(wildcard $(WEIGHTS))
	$(BIN)/featurizer --weights $(if $(filter random,$(WEIGHTS)),random,$(WEIGHTS)) $(STAGE_FLAGS)

tokens: $(WORK)/tokens.parquet
$(WORK)/tokens.parquet: $(BIN)/tokenizer $(WORK)/captions.parquet
	$(BIN)/tokenizer $(STAGE_FLAGS)

model: $(WORK)/model/best.mpk
$(WORK)/model/best.mpk: $(BIN)/trainer $(WORK)/tokens.parquet $(WORK)/features/_SUCCESS
	$(BIN)/trainer --resume $(STAGE_FLAGS)

evaluate: $(WORK)/eval/metrics.json
$(WORK)/eval/metrics.json: $(BIN)/evaluator $(WORK)/model/best.mpk
	$(BIN)/evaluator $(STAGE_FLAGS)

report: $(WORK)/eval/metrics.json

# ---- the two front doors ---------------------------------------------------------------
train: check-flickr8k report

check-flickr8k:
	@scripts/check-flickr8k.sh "$(DATASET)" "$(WEIGHTS)"

demo: $(BIN)/synth
	@[ "$(DEMO_WEIGHTS)" = random ] && echo "demo: no ImageNet weights in $(WEIGHTS) (make weights): using seeded random ResNet50 weights" || true
	$(MAKE) --no-print-directory synth report WORK=$(DEMO_WORK) DATASET=$(DEMO_DATASET) WEIGHTS=$(DEMO_WEIGHTS) SET="$(DEMO_SET) $(SET)"
	@scripts/demo-summary.sh $(DEMO_WORK)

clean-demo:
	rm -rf $(DEMO_WORK) $(DEMO_DATASET)

# ---- weights ---------------------------------------------------------------------------
weights: data/weights/resnet50-0676ba61.pth
data/weights/resnet50-0676ba61.pth:
	scripts/fetch-weights.sh $@

# ---- checks ----------------------------------------------------------------------------
test:
	scripts/test.sh

check:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release --all-targets --locked -- -D warnings

bench: all
	scripts/bench.sh
