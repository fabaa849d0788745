# bits_kld.gp: average bits per parameter (SPEC 6 formula) vs the mean KL
# divergence from the full-precision model's next-token distribution on one
# dataset (llama.cpp's definition; lower is closer), one series per method.
# Variables (gnuplot -e, set by `qharness plot`): scriptdir, term, outfile,
# datafile (one block per method, first row of each block its title), nblocks,
# series (per block the method's number, as in bits_ppl.gp), dataset,
# experiment, logy (1: the divergences span more than 10x).
# Data are written by the harness, not here.
load scriptdir.'/common.gp'
set title sprintf('%s: KL divergence from full precision on %s vs average bits per parameter', experiment, dataset) noenhanced
set xlabel 'average bits per parameter (SPEC 6: codes + statistics + outliers)'
if (logy) {
    set ylabel 'mean KL divergence (nats, log scale)'
    set logscale y
    set format y '%g'
} else {
    set ylabel 'mean KL divergence (nats)'
}
set autoscale xfix
set autoscale yfix
set offsets graph 0.04, graph 0.04, graph 0.06, graph 0.06
plot for [i=1:nblocks] datafile index (i-1) using 1:2 with linespoints lw 2 ps 1.4 \
        lc rgb color(int(word(series,i))) pt point(int(word(series,i))) title columnheader(1)
