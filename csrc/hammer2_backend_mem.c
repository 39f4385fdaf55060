/*
 * Memory backend: named, process-wide devices that outlive an open, so a
 * test can format one, close it and open it again.  Anonymous mappings
 * start zeroed and cost nothing until touched; one made from an image
 * file starts as its contents and copies only the pages written.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include "hammer2.h"
#include "hammer2_backend.h"

typedef struct memdev {
	struct memdev	*next;
	char		*name;
	uint64_t	size;
	uint8_t		*data;
	int		refs;		/* the registry's plus each open */
} memdev_t;

static pthread_mutex_t mem_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t mem_once = PTHREAD_ONCE_INIT;
static memdev_t *mem_list;

static void
mem_guard(void)
{
	hammer2_fork_guard(&mem_lock);
}

/* The registry's lock, held across fork like every process-wide one. */
static void
mem_lock_take(void)
{
	pthread_once(&mem_once, mem_guard);
	pthread_mutex_lock(&mem_lock);
}

static memdev_t *
mem_find(const char *name)
{
	memdev_t *m;

	for (m = mem_list; m; m = m->next)
		if (strcmp(m->name, name) == 0)
			return m;
	return NULL;
}

static void
mem_rele(memdev_t *m)		/* mem_lock held */
{
	if (--m->refs > 0)
		return;
	munmap(m->data, m->size);
	free(m->name);
	free(m);
}

/* Register data (a mapping of size bytes, which it then owns) as mem:NAME. */
static int
mem_register(const char *name, uint8_t *data, uint64_t size)
{
	memdev_t *m;
	int error = 0;

	mem_lock_take();
	if (mem_find(name)) {
		error = hammer2_seterr(EEXIST, "mem:%s already exists", name);
		goto out;
	}
	m = calloc(1, sizeof(*m));
	if (m == NULL || (m->name = strdup(name)) == NULL) {
		free(m);
		error = hammer2_seterr(ENOMEM, "out of memory");
		goto out;
	}
	m->data = data;
	m->size = size;
	m->refs = 1;
	m->next = mem_list;
	mem_list = m;
out:
	pthread_mutex_unlock(&mem_lock);
	if (error)
		munmap(data, size);
	return error;
}

int
hammer2_mem_create(const char *name, uint64_t size)
{
	uint8_t *data;

	if (size == 0 || size > (1ULL << 40))
		return hammer2_seterr(EINVAL, "mem:%s: bad size %llu", name,
				      (unsigned long long)size);
	data = mmap(NULL, size, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (data == MAP_FAILED)
		return hammer2_seterr(ENOMEM, "mem:%s: cannot map %llu bytes",
				      name, (unsigned long long)size);
	return mem_register(name, data, size);
}

/*
 * A memory device holding what the image file at path holds: a private
 * mapping of the file, so a page is copied only when the device writes it
 * and the file itself is never written (the torture resumes a crash image
 * this way instead of copying it).  The file must not change or shrink
 * while the device lives: pages not yet written read through to it.
 */
int
hammer2_mem_create_from(const char *name, const char *path)
{
	struct stat st;
	uint8_t *data;
	int fd, error;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		error = errno;
		if (fd >= 0)
			close(fd);
		return hammer2_seterr(error, "%s: %s", path, strerror(error));
	}
	if (!S_ISREG(st.st_mode) || st.st_size <= 0 ||
	    (uint64_t)st.st_size > (1ULL << 40)) {
		close(fd);
		return hammer2_seterr(EINVAL, "%s: not an image file of 1 byte "
				      "to 1 TiB", path);
	}
	data = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_NORESERVE, fd, 0);
	error = errno;
	close(fd);
	if (data == MAP_FAILED)
		return hammer2_seterr(error, "%s: cannot map %lld bytes: %s",
				      path, (long long)st.st_size,
				      strerror(error));
	return mem_register(name, data, (uint64_t)st.st_size);
}

/* Unregister; the memory goes when the last open of it closes. */
int
hammer2_mem_delete(const char *name)
{
	memdev_t **pp, *m;
	int error = 0;

	mem_lock_take();
	for (pp = &mem_list; *pp && strcmp((*pp)->name, name); pp = &(*pp)->next)
		;
	if ((m = *pp) == NULL) {
		error = hammer2_seterr(ENOENT, "no memory device mem:%s", name);
	} else {
		*pp = m->next;
		mem_rele(m);
	}
	pthread_mutex_unlock(&mem_lock);
	return error;
}

static int
mem_range(hammer2_backend_t *be, size_t bytes, uint64_t off)
{
	memdev_t *m = be->priv;

	if (off > m->size || m->size - off < bytes)
		return hammer2_seterr(EIO, "%s: I/O at 0x%llx/%zu lies past the "
				      "end (%llu bytes)", be->name,
				      (unsigned long long)off, bytes,
				      (unsigned long long)m->size);
	return 0;
}

static int
mem_pread(hammer2_backend_t *be, void *buf, size_t bytes, uint64_t off)
{
	int error = mem_range(be, bytes, off);

	if (error == 0)
		memcpy(buf, ((memdev_t *)be->priv)->data + off, bytes);
	return error;
}

static int
mem_pwrite(hammer2_backend_t *be, const void *buf, size_t bytes,
	   uint64_t off)
{
	int error = mem_range(be, bytes, off);

	if (error == 0)
		memcpy(((memdev_t *)be->priv)->data + off, buf, bytes);
	return error;
}

static int
mem_flush(hammer2_backend_t *be)
{
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return 0;
}

static int
mem_trim(hammer2_backend_t *be, uint64_t off, uint64_t bytes)
{
	int error = mem_range(be, (size_t)bytes, off);

	if (error == 0)
		memset(((memdev_t *)be->priv)->data + off, 0, (size_t)bytes);
	return error;
}

static int
mem_size(hammer2_backend_t *be, uint64_t *sizep)
{
	*sizep = ((memdev_t *)be->priv)->size;
	return 0;
}

static void
mem_close(hammer2_backend_t *be)
{
	mem_lock_take();
	mem_rele(be->priv);
	pthread_mutex_unlock(&mem_lock);
}

static const hammer2_backend_ops_t mem_ops = {
	.kind = "memory", .pread = mem_pread, .pwrite = mem_pwrite,
	.flush = mem_flush, .trim = mem_trim, .size = mem_size,
	.close = mem_close
};

int
hammer2_be_mem_open(hammer2_backend_t *be, const char *name, int flags)
{
	memdev_t *m;

	(void)flags;
	mem_lock_take();
	m = mem_find(name);
	if (m)
		++m->refs;
	pthread_mutex_unlock(&mem_lock);
	if (m == NULL)
		return hammer2_seterr(ENOENT, "mem:%s: no such memory device",
				      name);
	be->ops = &mem_ops;
	be->priv = m;
	return 0;
}
