# common.gp: the terminal and style shared by the qharness plot scripts
# (loaded by bits_ppl.gp, outliers.gp, layers.gp). Expects the variables
# term ('pngcairo' | 'png' | 'svg' | 'pdfcairo') and outfile, set by
# `qharness plot` with gnuplot -e. Holds no data and no plot command.
if (term eq 'pngcairo') {
    set terminal pngcairo size 1000,650 enhanced font 'Sans,11' linewidth 1.5
} else {
    if (term eq 'png') {
        set terminal png size 1000,650 enhanced
    } else {
        if (term eq 'svg') {
            set terminal svg size 1000,650 dynamic enhanced font 'Sans,11' linewidth 1.5
        } else {
            set terminal pdfcairo size 7in,4.5in enhanced font 'Sans,10' linewidth 1.5
        }
    }
}
set output outfile
set grid lc rgb '#dddddd'
set border lc rgb '#444444'
set key outside right top box opaque samplen 2 spacing 1.2
# one colour and point type per series, the same in every plot
array colors[8] = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#e377c2', '#17becf']
array points[8] = [7, 5, 9, 13, 11, 15, 4, 6]
