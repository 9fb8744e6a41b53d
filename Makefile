# Shorthands for tasks.py, which needs nothing but Python 3.11 (make is optional).
.PHONY: demo test bench lint proto diagrams reliability

demo test lint proto diagrams reliability:
	python3 tasks.py $@

bench:
	python3 tasks.py bench $(ARGS)
