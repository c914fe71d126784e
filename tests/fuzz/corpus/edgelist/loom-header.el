# loom-graph vertices=4 arcs=3
0 1
1 2
2 3
