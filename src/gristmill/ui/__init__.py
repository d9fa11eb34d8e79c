"""`runtime ui`: a web dashboard on the same snapshot as `runtime status`.

Pure parts: `access` (who may do what), `history` (snapshots kept, rates), `model` (the live
document and the graph), `panels` (lanes and the inventory), `page` and `script` (what the
browser gets). I/O: `gather` (reads and actions), `app` (the Starlette app).
"""
