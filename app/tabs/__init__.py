"""The studio's steps, one module per tab; each `build(context, workspace_state)` wires its tab."""
