/*
 * bounds: every limit on untrusted or user-supplied input, in one place. A
 * limit that is hit is an error with a message, never a truncation or a crash.
 */
#ifndef PIW_BOUNDS_H
#define PIW_BOUNDS_H

/* Request bodies and input files. */
#define BOUND_BODY_BYTES_DEFAULT (1024L * 1024L) /* --max-body-bytes default */
#define BOUND_BODY_BYTES_MAX	 (16L * 1024L * 1024L)
#define BOUND_INPUT_FILE_BYTES \
	(4L * 1024L * 1024L) /* mutate --pod / --service-account */
#define BOUND_JSON_DEPTH 100 /* a real Pod nests ~12 levels */

/* What the mutator reads from a pod. */
#define BOUND_CONTAINERS     1024 /* initContainers + containers */
#define BOUND_CONTAINER_NAME 253
#define BOUND_PATCH_BYTES    (8L * 1024L * 1024L)
#define BOUND_WARNINGS	     20	  /* then one "... and N more" */
#define BOUND_WARNING_BYTES  256  /* the API server shortens longer warnings */
#define BOUND_MESSAGE_BYTES  2048 /* a deny message */
#define BOUND_VALUE_SHOWN    80	  /* bytes of a bad value quoted in a message */

/* Profiles. */
#define BOUND_PROFILE_BYTES    (64L * 1024L)
#define BOUND_PROFILE_LINE     199 /* inih's line buffer is 200 bytes */
#define BOUND_PROFILES	       32
#define BOUND_PROFILE_NAME     40
#define BOUND_PROFILE_ENV      64
#define BOUND_PROFILE_SETTINGS 32
#define BOUND_PROFILE_LIST     32 /* items of a list value */
#define BOUND_SOURCES	       8  /* sources in a from/when chain */
#define BOUND_PROFILE_REQUIRED 8  /* [required-annotation] sections */
#define BOUND_PROFILE_FILES    4  /* [file] sections */
#define BOUND_MAP_FIELDS       16 /* keys of [identity-map-json] */
#define BOUND_FILE_FIELDS      32 /* json.* keys of one [file] */
#define BOUND_TEMPLATE_PARTS   32 /* literals and placeholders of a template */
#define BOUND_FILE_BYTES       (16L * 1024L) /* one rendered file */
#define BOUND_SETTINGS	       64 /* --setting pairs on the command line */
#define BOUND_SETTING_VALUE    1024

/* Identity maps (--identity-map). */
#define BOUND_MAP_FILE_BYTES  (4L * 1024L * 1024L)
#define BOUND_MAP_ENTRIES     100000
#define BOUND_MAP_ANNOTATIONS 32 /* per entry */
#define BOUND_MAP_LINE	      8192

/* Kubernetes names, as the API server validates them. */
#define BOUND_DNS_LABEL	    63
#define BOUND_DNS_SUBDOMAIN 253
#define BOUND_PATH	    1024

#endif
