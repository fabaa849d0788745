# bits_ppl.gp: average bits per parameter (SPEC 6 formula) vs perplexity on one
# dataset, one series per method, the Pareto front marked (open circles joined
# by a dashed line), the full-precision perplexity as a horizontal line.
# Variables (gnuplot -e, set by `qharness plot`): scriptdir, term, outfile, datafile (one
# block per method and storage mode, first row of each block its title), paretofile,
# nblocks, series (per block the method's number: RTN 1, GPTQ 2, SpQR 3, and 5, 6, 7
# for their deployment-mode points (stats_dtype fp16), so that a series has the same
# colour in every plot),
# dataset, experiment, hasfp, fp, logy (1: perplexities span more than 3x).
# Data are written by the harness, not here.
load scriptdir.'/common.gp'
set title sprintf('%s: %s perplexity vs average bits per parameter', experiment, dataset) noenhanced
set xlabel 'average bits per parameter (SPEC 6: codes + statistics + outliers)'
if (logy) {
    set ylabel sprintf('%s perplexity (log scale)', dataset) noenhanced
    set logscale y
    set format y '%g'
    do for [e=-1:7] { set ytics add (10.0**e, 2*10.0**e, 5*10.0**e) }
} else {
    set ylabel sprintf('%s perplexity', dataset) noenhanced
}
# the data's own range plus a margin (no widening to round numbers or whole decades)
set autoscale xfix
set autoscale yfix
set offsets graph 0.04, graph 0.04, graph 0.06, graph 0.06
if (hasfp) {
    plot for [i=1:nblocks] datafile index (i-1) using 1:2 with linespoints lw 2 ps 1.4 \
            lc rgb color(int(word(series,i))) pt point(int(word(series,i))) title columnheader(1), \
         paretofile using 1:2 with linespoints dt 2 lw 1.5 lc rgb '#000000' pt 6 ps 2.6 title 'Pareto front', \
         fp with lines dt 4 lw 2 lc rgb '#777777' title sprintf('full precision (%.3f)', fp)
} else {
    plot for [i=1:nblocks] datafile index (i-1) using 1:2 with linespoints lw 2 ps 1.4 \
            lc rgb color(int(word(series,i))) pt point(int(word(series,i))) title columnheader(1), \
         paretofile using 1:2 with linespoints dt 2 lw 1.5 lc rgb '#000000' pt 6 ps 2.6 title 'Pareto front'
}
