/* Open files' handles, shared by the read path (ops.c) and the write path
 * (writes.c). */
#pragma once

#include "fs.h"

#define FS(req) ((struct fs *)fuse_req_userdata(req))

/* An open file. Reading: the content rendered at open, read with direct
 * I/O (each open reads one rendering of its own), or through the page cache
 * where that is safe (pagecache.c: READs then serve the current rendering).
 * Writing: the value being written, which is what the program writes
 * between open and close. */
struct handle {
	struct open_obj obj;
	struct auth_blob *blob; /* reading */
	bool writing;
	bool truncated;         /* opened with O_TRUNC: even nothing written is the new content */
	pid_t opener;           /* its close() completes the value; other processes' (children that
				 * inherited the descriptor) don't */
	bool sized;             /* a session file: the kernel must hold the size of blob (open_reply()) */
	bool cached;            /* read through the page cache (pagecache_open()) */
	uint32_t target_id;
	unsigned file;
	int error;              /* a write was refused: so are the rest, and close */
	struct caller *caller;  /* the opener, when auditing or caller rules need it */
	struct node node;       /* what was opened, for its audit event */
	size_t applied;         /* bytes of buf that took effect */
	size_t len;
	char buf[];             /* AUTH_WRITE_MAX bytes, wiped at release */
};

/* The kernel orders the requests on one open file or directory (open's
 * reply before its reads, a read's reply before the release), but through
 * /dev/fuse, which ThreadSanitizer can't see, and idle workers are kept, so
 * they run on different threads. One read-modify-write of a shared counter
 * at the start of each handler that uses a handle and before its reply
 * states that order in C (and costs one atomic): what a handler did before
 * its reply happens before what the next one does. What a reply sends (a
 * blob) is held by a reference of its own, dropped after the reply. */
static inline void handles_order(struct fs *fs)
{
	__atomic_fetch_add(&fs->handles_order, 1, __ATOMIC_ACQ_REL);
}

/* handle.c */
/* A new handle on the open files' list. */
struct handle *handle_new(struct fs *fs, bool writing);
/* Unlinks h and frees it (its page-cache open closed). */
void handle_release(struct fs *fs, struct handle *h);

/* writes.c: what a program writes between open and close is one value. */
void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off, struct fuse_file_info *fi);
void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, struct fuse_file_info *fi);
void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent, const char *newname,
	       unsigned int flags);
/* The writer is done (its last close): a value still incomplete is malformed. */
int write_close(struct fs *fs, fuse_ino_t ino, struct handle *h);
