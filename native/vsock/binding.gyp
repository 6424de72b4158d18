{
  "targets": [
    {
      "target_name": "vsock",
      "sources": ["vsock.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    }
  ]
}
