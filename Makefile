# Thin targets; each calls a script in ci/.
.PHONY: run test bench lint deps

run:
	./ci/run.sh

test:
	./ci/test.sh

bench:
	./ci/bench.sh

lint:
	./ci/lint.sh

deps:
	./ci/deps.sh
