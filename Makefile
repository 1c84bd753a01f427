# Thin targets; each calls a script in ci/.
.PHONY: run test bench lint deps vm-test image-repro fuzz

run:
	./ci/run.sh

test:
	./ci/test.sh

bench:
	./ci/bench.sh

lint:
	./ci/lint.sh

# Every libFuzzer target for FUZZ_SECONDS (default 60) each; `make test` runs them 5 s each.
fuzz:
	./ci/fuzz.sh

deps:
	./ci/deps.sh

# Boot tests (also the last step of `make test`) and the reproducibility check (two image builds).
vm-test:
	./ci/vm-test.sh

image-repro:
	./ci/image-repro.sh
