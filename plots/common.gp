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
# one colour and point type per series, the same in every plot; after 12
# series the cycle repeats with another dash type (dashes(i))
ncolors = 12
array colors[12] = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#e377c2', '#17becf', \
                    '#bcbd22', '#7f7f7f', '#000080', '#008080']
array points[12] = [7, 5, 9, 13, 11, 15, 4, 6, 8, 10, 12, 14]
color(i) = colors[(i-1)%ncolors+1]
point(i) = points[(i-1)%ncolors+1]
dashes(i) = (i-1)/ncolors + 1
