/*
 * The part of AF_VSOCK that Node cannot do itself: create a listening
 * socket, tell what an inherited socket is, and read a peer's context id.
 * Streams are served by libuv (the JS side opens the listening fd as a TCP
 * handle), so this addon never reads or writes connection data.
 */
#define NAPI_VERSION 8
#include <errno.h>
#include <stdio.h>
#include <node_api.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

static napi_value throw_errno(napi_env env, const char *what, int err) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_value code, text, error;
  const char *name = err == EAFNOSUPPORT ? "EAFNOSUPPORT" : err == EADDRINUSE ? "EADDRINUSE" : err == EACCES ? "EACCES"
                   : err == ENODEV ? "ENODEV" : err == EBADF ? "EBADF" : err == ENOTSOCK ? "ENOTSOCK" : err == ENOTCONN ? "ENOTCONN"
                   : err == ECONNREFUSED ? "ECONNREFUSED" : err == ECONNRESET ? "ECONNRESET" : err == ETIMEDOUT ? "ETIMEDOUT"
                   : err == EADDRNOTAVAIL ? "EADDRNOTAVAIL" : err == EINVAL ? "EINVAL" : "EIO";
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &text);
  napi_create_error(env, code, text, &error);
  napi_value errnoValue;
  napi_create_int32(env, err, &errnoValue);
  napi_set_named_property(env, error, "errno", errnoValue);
  napi_throw(env, error);
  return NULL;
}

static int arg_u32(napi_env env, napi_callback_info info, size_t n, uint32_t *out) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < n) return -1;
  for (size_t i = 0; i < n; i++) {
    if (napi_get_value_uint32(env, argv[i], &out[i]) != napi_ok) return -1;
  }
  return 0;
}

/* A vsock stream socket and its address; fd < 0 with errno set on failure. */
static int vsock_socket(uint32_t cid, uint32_t port, struct sockaddr_vm *addr) {
  memset(addr, 0, sizeof *addr);
  addr->svm_family = AF_VSOCK;
  addr->svm_cid = cid;
  addr->svm_port = port;
  return socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
}

/* Closes fd and throws for the failed step. */
static napi_value fail_closing(napi_env env, int fd, const char *what) {
  int err = errno;
  close(fd);
  return throw_errno(env, what, err);
}

static napi_value fd_value(napi_env env, int fd) {
  napi_value result;
  napi_create_int32(env, fd, &result);
  return result;
}

/* The one argument of the fd functions; throws a TypeError naming the call when it is not an unsigned integer. */
static int arg_fd(napi_env env, napi_callback_info info, const char *call, uint32_t *fd) {
  if (arg_u32(env, info, 1, fd) == 0) return 0;
  char msg[96];
  snprintf(msg, sizeof msg, "%s(fd): an unsigned integer", call);
  napi_throw_type_error(env, NULL, msg);
  return -1;
}

/* listen(port, backlog) -> fd: SOCK_STREAM on VMADDR_CID_ANY, close-on-exec, blocking (libuv sets O_NONBLOCK). */
static napi_value Listen(napi_env env, napi_callback_info info) {
  uint32_t a[2];
  if (arg_u32(env, info, 2, a) != 0) {
    napi_throw_type_error(env, NULL, "listen(port, backlog): two unsigned integers");
    return NULL;
  }
  struct sockaddr_vm addr;
  int fd = vsock_socket(VMADDR_CID_ANY, a[0], &addr);
  if (fd < 0) return throw_errno(env, "socket(AF_VSOCK)", errno);
  if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0) return fail_closing(env, fd, "bind");
  if (listen(fd, (int)a[1]) != 0) return fail_closing(env, fd, "listen");
  return fd_value(env, fd);
}

/*
 * connect(cid, port) -> fd: a connected stream, for clients (the guest
 * simulator). Blocking; vsock connects complete or fail within the
 * kernel's connect timeout (2 s by default).
 */
static napi_value Connect(napi_env env, napi_callback_info info) {
  uint32_t a[2];
  if (arg_u32(env, info, 2, a) != 0) {
    napi_throw_type_error(env, NULL, "connect(cid, port): two unsigned integers");
    return NULL;
  }
  struct sockaddr_vm addr;
  int fd = vsock_socket(a[0], a[1], &addr);
  if (fd < 0) return throw_errno(env, "socket(AF_VSOCK)", errno);
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) return fail_closing(env, fd, "connect");
  return fd_value(env, fd);
}

/* peerCid(fd) -> the connected peer's context id. */
static napi_value PeerCid(napi_env env, napi_callback_info info) {
  uint32_t fd;
  if (arg_fd(env, info, "peerCid", &fd) != 0) return NULL;
  struct sockaddr_vm addr;
  socklen_t len = sizeof addr;
  memset(&addr, 0, sizeof addr);
  if (getpeername((int)fd, (struct sockaddr *)&addr, &len) != 0) return throw_errno(env, "getpeername", errno);
  if (addr.svm_family != AF_VSOCK) return throw_errno(env, "getpeername", EAFNOSUPPORT);
  napi_value result;
  napi_create_uint32(env, addr.svm_cid, &result);
  return result;
}

/* describe(fd) -> { family: 'vsock'|'unix'|'inet'|'inet6'|number, stream, listening, port? } for an inherited fd. */
static napi_value Describe(napi_env env, napi_callback_info info) {
  uint32_t fd;
  if (arg_fd(env, info, "describe", &fd) != 0) return NULL;
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  memset(&ss, 0, sizeof ss);
  if (getsockname((int)fd, (struct sockaddr *)&ss, &len) != 0) return throw_errno(env, "getsockname", errno);
  int type = 0, accepting = 0;
  socklen_t olen = sizeof type;
  if (getsockopt((int)fd, SOL_SOCKET, SO_TYPE, &type, &olen) != 0) return throw_errno(env, "getsockopt(SO_TYPE)", errno);
  olen = sizeof accepting;
  if (getsockopt((int)fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &olen) != 0) return throw_errno(env, "getsockopt(SO_ACCEPTCONN)", errno);
  napi_value obj, family, stream, listening;
  napi_create_object(env, &obj);
  switch (ss.ss_family) {
    case AF_VSOCK: napi_create_string_utf8(env, "vsock", NAPI_AUTO_LENGTH, &family); break;
    case AF_UNIX: napi_create_string_utf8(env, "unix", NAPI_AUTO_LENGTH, &family); break;
    case AF_INET: napi_create_string_utf8(env, "inet", NAPI_AUTO_LENGTH, &family); break;
    case AF_INET6: napi_create_string_utf8(env, "inet6", NAPI_AUTO_LENGTH, &family); break;
    default: napi_create_int32(env, ss.ss_family, &family);
  }
  napi_get_boolean(env, type == SOCK_STREAM, &stream);
  napi_get_boolean(env, accepting != 0, &listening);
  napi_set_named_property(env, obj, "family", family);
  napi_set_named_property(env, obj, "stream", stream);
  napi_set_named_property(env, obj, "listening", listening);
  if (ss.ss_family == AF_VSOCK) {
    napi_value port;
    napi_create_uint32(env, ((struct sockaddr_vm *)&ss)->svm_port, &port);
    napi_set_named_property(env, obj, "port", port);
  }
  return obj;
}

/* close(fd): for a listening fd that was never handed to libuv. */
static napi_value Close(napi_env env, napi_callback_info info) {
  uint32_t fd;
  if (arg_fd(env, info, "close", &fd) != 0) return NULL;
  if (close((int)fd) != 0) return throw_errno(env, "close", errno);
  return NULL;
}

static napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"listen", NULL, Listen, NULL, NULL, NULL, napi_default, NULL},
    {"connect", NULL, Connect, NULL, NULL, NULL, napi_default, NULL},
    {"peerCid", NULL, PeerCid, NULL, NULL, NULL, napi_default, NULL},
    {"describe", NULL, Describe, NULL, NULL, NULL, napi_default, NULL},
    {"close", NULL, Close, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
