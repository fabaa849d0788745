# qharness build. The CPU path always builds; kernels/*.cu are compiled and
# linked whenever nvcc is found. Whether a GPU is present is decided at run time.
#
#   make            build build/qharness and the test binaries
#   make run        deps + data + build, then the main job: the stories260K_methods
#                   experiment end to end (sweep, table, plots under results/)
#   make sweep EXP=NAME [JOBS=N]   run experiments/NAME.ini (resumable) into results/NAME
#   make report EXP=NAME           results/NAME/table.md and table.csv
#   make plots EXP=NAME            results/NAME/plots/*.png|svg|pdf (gnuplot)
#   make test       deps + data + build, then every test
#   make bench      benchmarks, CPU (bench/) then GPU (kernels/bench/): ratios against
#                   sgemm / cuBLAS measured in the same run
#   make deps       install the Debian packages (as root) or print the command
#   make data       fill data/ from DATA_MIRROR or the upstream URLs, sha256-checked; also the
#                   optional C4 shards of the paper (after `make`: build/qharness checks them)
#   make debug | asan | valgrind

BUILD    ?= build
# The library's folders in layers, bottom first (README: Layout; the order and
# its reasons are tests/check_layers.sh's): each folder's sources are compiled
# with only their own folder and the folders below it on the include path, so
# an include that goes up does not build. Tests and benchmarks see them all.
LAYERS   := $(shell sh tests/check_layers.sh --order)
ALL_INC   = $(addprefix -I,$(LAYERS))
layer_inc :=
$(foreach d,$(LAYERS),$(eval layer_inc += -I$(d))$(eval $(BUILD)/$(d)/%.o: LAYER_INC := $(layer_inc)))
CC       ?= gcc
OPT      ?= -O3 -march=native
CFLAGS   += $(OPT) -std=gnu11 -fno-math-errno -g -Wall -Wextra -Wno-unused-parameter -Werror=implicit-function-declaration -fopenmp -MMD -MP
PKGS      = hdf5-serial gsl jansson inih libpcre2-8 libutf8proc
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
# OpenBLAS built on OpenMP (Debian's openblas-openmp flavour) shares libgomp's
# thread pool with our own parallel loops; the pthread flavour would spin
# against it (20x slower on 2 cores). Fall back to pkg-config's flavour.
BLAS_ARCH  := $(shell dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)
BLAS_OMP   := /usr/lib/$(BLAS_ARCH)/openblas-openmp
ifneq ($(wildcard $(BLAS_OMP)/libopenblas.so),)
  BLAS_CFLAGS = -I/usr/include/$(BLAS_ARCH)/openblas-openmp
  BLAS_LIBS   = -L$(BLAS_OMP) -Wl,-rpath,$(BLAS_OMP) -lopenblas
else
  BLAS_CFLAGS = $(shell pkg-config --cflags openblas 2>/dev/null)
  BLAS_LIBS   = $(shell pkg-config --libs openblas 2>/dev/null)
endif
CFLAGS   += $(PKG_CFLAGS) $(BLAS_CFLAGS)
# GSL's CBLAS comes from OpenBLAS (pkg-config gsl would add the slow -lgslcblas).
LDLIBS   += $(filter-out -lgslcblas,$(PKG_LIBS)) $(BLAS_LIBS) -lhdf5_hl -lz -lm -fopenmp

# ---- CUDA detection -------------------------------------------------------
NVCC     ?= $(shell command -v nvcc 2>/dev/null || (test -x /usr/local/cuda/bin/nvcc && echo /usr/local/cuda/bin/nvcc))
CUDA_ARCHS ?= 80 90
ifneq ($(strip $(NVCC)),)
  CUDA_HOME  ?= $(patsubst %/bin/nvcc,%,$(NVCC))
  CU_SRCS     = $(wildcard kernels/*.cu)
  CU_OBJS     = $(patsubst %.cu,$(BUILD)/%.o,$(CU_SRCS))
  NVCCFLAGS  ?= -O3 -std=c++17 -lineinfo $(foreach a,$(CUDA_ARCHS),-gencode arch=compute_$(a),code=sm_$(a)) \
                -Xcompiler -fopenmp -Xcompiler -fPIC
  CFLAGS     += -DQH_HAVE_CUDA=1 -I$(CUDA_HOME)/include
  LDLIBS     += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublas -lcusolver -lcudart -lstdc++
  CUDA_MSG    = nvcc found at $(NVCC): building kernels for sm_$(subst $() $(),/sm_,$(CUDA_ARCHS))
else
  CU_OBJS     =
  CUDA_MSG    = nvcc not found: CPU-only build (kernels/*.cu skipped)
endif

LIB_SRCS  = $(filter-out harness/cli/main.c,$(wildcard $(addsuffix /*.c,$(LAYERS))))
LIB_OBJS  = $(patsubst %.c,$(BUILD)/%.o,$(LIB_SRCS))
LIB       = $(BUILD)/libqh.a
TEST_SRCS = $(wildcard tests/test_*.c tests/gpu/test_*.c)
TEST_BINS = $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRCS))
BENCH_SRCS = $(wildcard bench/bench_*.c kernels/bench/bench_*.c)
BENCH_BINS = $(addprefix $(BUILD)/bench/,$(basename $(notdir $(BENCH_SRCS))))
QH        = $(BUILD)/qharness
# The commit the binary is built from, "-dirty" when the tree differs from it
# (tracked changes or untracked files that are not ignored): generated on every
# make, rewritten only when it changes, so qharness is relinked exactly when
# HEAD or the dirty state moved (provenance.c; test: tests/cli/test_provenance.sh).
GIT_VERSION = $(BUILD)/gen/git_version

DATA_MIRROR ?= $(if $(wildcard ../shared/data/MANIFEST.tsv),../shared/data,)

.PHONY: all run test bench deps data debug asan valgrind clean check-deps cuda-info sweep report plots FORCE
all: cuda-info $(QH) $(TEST_BINS) $(BENCH_BINS)

cuda-info:
	@echo "qharness: $(CUDA_MSG)"

$(QH): $(BUILD)/harness/cli/main.o $(GIT_VERSION).o $(LIB) $(CU_OBJS)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(BUILD)/harness/cli/main.o $(GIT_VERSION).o $(CU_OBJS) $(LIB) $(LDLIBS)

# Not a git checkout of this folder (a tarball inside some other repository): "unknown".
$(GIT_VERSION).c: FORCE
	@mkdir -p $(@D)
	@v=unknown; \
	if [ "$$(git rev-parse --show-toplevel 2>/dev/null)" = "$$(pwd -P)" ]; then \
	  v=$$(git rev-parse HEAD 2>/dev/null || echo unknown); \
	  if [ "$$v" != unknown ] && [ -n "$$(git status --porcelain 2>/dev/null | head -n 1)" ]; then v=$$v-dirty; fi; \
	fi; \
	printf '/* Generated by the Makefile: the commit of this build (provenance.c). */\nconst char qh_git_commit[] = "%s";\n' "$$v" >$@.tmp; \
	if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv -f $@.tmp $@; echo "qharness: built from $$v"; fi

$(GIT_VERSION).o: $(GIT_VERSION).c
	$(CC) $(CFLAGS) -c -o $@ $<

FORCE:

$(LIB): $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LAYER_INC) -c -o $@ $<

$(BUILD)/kernels/%.o: kernels/%.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) $(LAYER_INC) -MMD -MP -c -o $@ $<

$(BUILD)/tests/%: tests/%.c $(LIB) $(CU_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(ALL_INC) $(LDFLAGS) -Itests -o $@ $< $(CU_OBJS) $(LIB) $(LDLIBS)

# CPU benchmarks in bench/, GPU ones in kernels/bench/; all built into $(BUILD)/bench/
$(BUILD)/bench/%: bench/%.c $(LIB) $(CU_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(ALL_INC) $(LDFLAGS) -o $@ $< $(CU_OBJS) $(LIB) $(LDLIBS)

$(BUILD)/bench/%: kernels/bench/%.c $(LIB) $(CU_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(ALL_INC) $(LDFLAGS) -o $@ $< $(CU_OBJS) $(LIB) $(LDLIBS)

# ---- dependencies and data --------------------------------------------------
check-deps:
	@.ci/deps.sh --check >/dev/null 2>&1 || .ci/deps.sh

deps:
	@.ci/deps.sh

# DATA_OPTIONAL=0 (run, test, bench): the optional files (the paper's C4 shards, hundreds of MB) are
# not fetched there; `make data` fetches them. QH checks the shards' JSON lines before they are installed.
DATA_OPTIONAL ?= 1
data:
	@DATA_MIRROR="$(DATA_MIRROR)" DATA_OPTIONAL="$(DATA_OPTIONAL)" QH="$(QH)" datasets/fetch.sh datasets/manifest.tsv data || { \
	  echo "make data: some files could not be fetched (see above). To use a local mirror, set DATA_MIRROR to a folder holding the files of datasets/manifest.tsv: make data DATA_MIRROR=/path/to/data (default: ../shared/data, when it holds MANIFEST.tsv; now DATA_MIRROR='$(DATA_MIRROR)')" >&2; \
	  exit 1; }

# ---- the README's two commands ------------------------------------------------
run: check-deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory data DATA_OPTIONAL=0
	@tests/run_main.sh $(QH)

test: check-deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory data DATA_OPTIONAL=0
	@tests/run_tests.sh $(BUILD)

bench: check-deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory data DATA_OPTIONAL=0
	@bench/run_bench.sh $(BUILD)
	@echo
	@kernels/bench/run_bench.sh $(BUILD)

# ---- experiments: experiments/$(EXP).ini -> results/$(EXP) ---------------------------
EXP  ?= stories260K_methods
JOBS ?= 1
sweep: $(QH)
	OMP_WAIT_POLICY=$${OMP_WAIT_POLICY:-passive} $(QH) sweep experiments/$(EXP).ini --jobs $(JOBS)

report: $(QH)
	$(QH) report results/$(EXP)

plots: $(QH)
	$(QH) plot results/$(EXP)

debug:
	$(MAKE) BUILD=build-debug OPT="-O0" all
asan:
	$(MAKE) BUILD=build-asan OPT="-O1 -fsanitize=address,undefined -fno-omit-frame-pointer" \
	        LDFLAGS="-fsanitize=address,undefined" all
valgrind: debug
	valgrind --error-exitcode=1 --leak-check=full build-debug/tests/test_model

clean:
	rm -rf $(BUILD) build-debug build-asan

# Dependency files (-MMD, gcc's "obj: src" and nvcc's "obj : src"; a long
# object path puts the source on the second line, "obj: \"), except those
# whose source is gone (a moved file: its old dependency file would ask for
# the old path).
-include $(shell find $(BUILD) -name '*.d' 2>/dev/null | \
    xargs -r awk 'FNR == 1 { s = ($$2 == ":") ? $$3 : $$2; if (s == "\\") { getline; s = $$1 } \
                  if ((getline x < s) >= 0) print FILENAME; close(s) }' 2>/dev/null)
