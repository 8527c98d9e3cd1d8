/*
 * server_offload: threads that answer the admissions needing network I/O (a live
 * ServiceAccount lookup on a cache miss). The libmicrohttpd thread suspends such a
 * request and queues it here; a pool thread computes the reply and resumes the
 * connection, whose thread then sends it (server_request.c). The pool runs only
 * when the ServiceAccount source may block.
 */
#include "server_internal.h"

static void *offload_main(void *arg)
{
	struct server *s = arg;
	struct offload *o = &s->offload;

	for (;;) {
		struct request *r;

		pthread_mutex_lock(&o->lock);
		while (o->head == NULL && !o->stopping)
			pthread_cond_wait(&o->wake, &o->lock);
		r = o->head;
		if (r) {
			o->head = r->next_job;
			if (o->head == NULL)
				o->tail = NULL;
		}
		pthread_mutex_unlock(&o->lock);
		if (r == NULL)
			return NULL; /* stopping, and the queue is empty */
		webhook_answer(s->webhook, &r->call, true, &r->reply);
		atomic_store_explicit(&r->reply_ready, true,
				      memory_order_release);
		MHD_resume_connection(r->conn);
	}
}

void server_offload_submit(struct server *s, struct request *r)
{
	struct offload *o = &s->offload;

	pthread_mutex_lock(&o->lock);
	r->next_job = NULL;
	if (o->tail)
		o->tail->next_job = r;
	else
		o->head = r;
	o->tail = r;
	pthread_cond_signal(&o->wake);
	pthread_mutex_unlock(&o->lock);
}

void server_offload_start(struct server *s)
{
	struct offload *o = &s->offload;

	if (!s->webhook->sa->blocking)
		return;
	while (o->n_threads < OFFLOAD_THREADS &&
	       pthread_create(&o->threads[o->n_threads], NULL, offload_main,
			      s) == 0)
		o->n_threads++;
}

void server_offload_stop(struct server *s)
{
	struct offload *o = &s->offload;

	pthread_mutex_lock(&o->lock);
	o->stopping = true;
	pthread_cond_broadcast(&o->wake);
	pthread_mutex_unlock(&o->lock);
	for (size_t i = 0; i < o->n_threads; i++)
		pthread_join(o->threads[i], NULL);
	o->n_threads = 0;
}
