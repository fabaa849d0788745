# layers.gp: the fraction of weights kept as outliers in every sub-layer, one
# series per quantized point with outliers; x = block + (k + 0.5) / 7 for the
# sub-layers k = wq wk wv wo w1 w3 w2 of each block.
# Variables (gnuplot -e, set by `qharness plot`): scriptdir, term, outfile, datafile (one
# block per point, first row its title), nblocks, nlayers, experiment.
load scriptdir.'/common.gp'
set title sprintf('%s: outliers per sub-layer (wq wk wv wo w1 w3 w2 within each block)', experiment) noenhanced
set xlabel 'transformer block'
set ylabel 'outliers (% of the sub-layer weights)'
set xrange [0:nlayers]
set yrange [0:*]
step = nlayers > 16 ? 4 : 1
set xtics 0, step, nlayers
set mxtics (nlayers > 16 ? 4 : 7)
set grid xtics mxtics lc rgb '#dddddd'
plot for [i=1:nblocks] datafile index (i-1) using 1:2 with linespoints lw 1.5 ps 0.9 \
        lc rgb color(i) pt point(i) dt dashes(i) title columnheader(1) noenhanced
