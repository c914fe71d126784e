# Directed graph: x.txt
# Nodes: 5 Edges: 3
# FromNodeId	ToNodeId
0	1
1	4
4	0
