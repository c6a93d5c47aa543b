# xrdnb: build the book and run the tests.
#
#   make book                  execute every chapter (profile "book") and build _build/html
#   make book PROFILE=smoke    the same with the quick "smoke" parameters
#   make test                  run the test suite (pytest -m "not slow" for a quick local run)
#   make lint                  ruff check, ruff format --check and mypy
#   make benchmark             run every benchmarks/*.py
#   make check-pages           open every page of _build/html in headless Chromium (after make book)
#   make clean                 remove _build
#
# The first target that needs it creates .venv and installs the package with all extras.

PYTHON ?= python3
PROFILE ?= book
BOOK_ARGS ?=
VENV = .venv
VPY = $(VENV)/bin/python

.PHONY: all book test lint benchmark clean check-pages

all: book

$(VENV)/.installed: pyproject.toml
	test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --upgrade pip
	$(VENV)/bin/pip install -e '.[study,book,test,lint]'
	touch $@

test: $(VENV)/.installed
	$(VPY) -m pytest -q

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

book: $(VENV)/.installed
	$(VPY) tools/build_book.py --profile $(PROFILE) $(BOOK_ARGS)

benchmark: $(VENV)/.installed
	@for f in benchmarks/*.py; do \
		[ -e "$$f" ] || continue; \
		case "$$f" in benchmarks/_*) continue;; esac; \
		echo "== $$f"; \
		$(VPY) "$$f" || exit 1; \
	done

check-pages: $(VENV)/.installed
	$(VPY) tools/check_pages.py

clean:
	rm -rf _build
