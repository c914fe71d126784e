0 1 1.5
1 2 -2e3

% comment
2 0 0.25