0 1 nan
1 2 inf
