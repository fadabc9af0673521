"""The `http` trigger: counts of requests pushed by interceptors, read from memory.

`config` parses the trigger (shared with the interceptor, which routes by it), `report` is the
document interceptors push, `table` keeps the latest report of each interceptor replica, and
`scaler` reads the table. Nothing here talks to the network.
"""
