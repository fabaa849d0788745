# outliers.gp: SpQR's outlier threshold tau vs the fraction of weights kept as
# outliers, one series per other setting (bits, group size, ...).
# Variables (gnuplot -e, set by `qharness plot`): scriptdir, term, outfile, datafile (one
# block per series, first row its title), nblocks, experiment, xlo, xhi (x range).
load scriptdir.'/common.gp'
set title sprintf('%s: outlier threshold vs outliers', experiment) noenhanced
set xlabel 'outlier threshold {/Symbol t} (relative to the layer outlier scale, log scale)'
set ylabel 'outliers (% of quantized weights)'
set logscale x
set xrange [xlo:xhi]
set format x '%g'
do for [e=-3:3] { set xtics add (10.0**e, 2*10.0**e, 5*10.0**e) }
set yrange [0:*]
set offsets 0, 0, graph 0.06, 0
plot for [i=1:nblocks] datafile index (i-1) using 1:2 with linespoints lw 2 ps 1.4 \
        lc rgb color(i) pt point(i) dt dashes(i) title columnheader(1) noenhanced
