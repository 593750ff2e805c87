/*
 * gss_ldap_stubs.c - failing GSSAPI and LDAP entry points for the static build.
 *
 * Debian builds libpq with Kerberos (GSSAPI) and LDAP support, so libpq.a
 * references gss_* and ldap_* symbols, but Debian ships no static
 * libgssapi_krb5 or libldap. Rather than carry two foreign libraries into
 * a scratch image for features schemagate does not need, the static build
 * links these stubs: every call fails, so libpq reports a clear error.
 *
 * What that means at run time (documented in container/README.md):
 *   - gssencmode=prefer (libpq's default) quietly skips GSS encryption,
 *     because gss_acquire_cred reports "no credentials";
 *   - gssencmode=require, or a server demanding Kerberos authentication,
 *     fails with "GSSAPI ... not available in the static schemagate build";
 *   - ldap:// lines in pg_service.conf fail with
 *     "could not create LDAP structure".
 *
 * This file is compiled ONLY when SG_STATIC is on (the core library globs
 * only the top level of src/). The prototypes follow RFC 2744 and
 * OpenLDAP's ldap.h, with opaque pointers for the handles we never touch.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>

typedef uint32_t OM_uint32;

typedef struct {
	OM_uint32 length;
	void *elements;
} gss_OID_desc;

typedef struct {
	size_t length;
	void *value;
} gss_buffer_desc;

typedef gss_OID_desc *gss_OID;
typedef gss_buffer_desc *gss_buffer_t;
typedef void *gss_name_t;
typedef void *gss_cred_id_t;
typedef void *gss_ctx_id_t;
typedef void *gss_OID_set;
typedef void *gss_channel_bindings_t;
typedef int gss_cred_usage_t;

/* GSS_S_FAILURE: a routine error of class "unspecified failure". */
#define SG_GSS_S_FAILURE ((OM_uint32)13 << 16)
#define SG_GSS_S_COMPLETE ((OM_uint32)0)
/* LDAP_NOT_SUPPORTED from ldap.h. */
#define SG_LDAP_NOT_SUPPORTED (-12)

static const char gss_unavailable[] =
	"GSSAPI (Kerberos) is not available in the static schemagate build";
static const char ldap_unavailable[] =
	"LDAP is not available in the static schemagate build";

/* 1.2.840.113554.1.2.1.4, kept real so a caller printing it sees sense. */
static gss_OID_desc hostbased_service_oid = {
	10, (void *)"\x2a\x86\x48\x86\xf7\x12\x01\x02\x01\x04"
};
extern gss_OID GSS_C_NT_HOSTBASED_SERVICE;
gss_OID GSS_C_NT_HOSTBASED_SERVICE = &hostbased_service_oid;

OM_uint32 gss_acquire_cred(OM_uint32 *minor, gss_name_t name, OM_uint32 time_req,
			   gss_OID_set mechs, gss_cred_usage_t usage,
			   gss_cred_id_t *cred, gss_OID_set *actual_mechs,
			   OM_uint32 *time_rec);
OM_uint32 gss_delete_sec_context(OM_uint32 *minor, gss_ctx_id_t *ctx,
				 gss_buffer_t output_token);
OM_uint32 gss_display_status(OM_uint32 *minor, OM_uint32 status, int status_type,
			     gss_OID mech, OM_uint32 *message_context,
			     gss_buffer_t status_string);
OM_uint32 gss_import_name(OM_uint32 *minor, gss_buffer_t name_buffer,
			  gss_OID name_type, gss_name_t *name);
OM_uint32 gss_init_sec_context(OM_uint32 *minor, gss_cred_id_t cred,
			       gss_ctx_id_t *ctx, gss_name_t target, gss_OID mech,
			       OM_uint32 req_flags, OM_uint32 time_req,
			       gss_channel_bindings_t bindings,
			       gss_buffer_t input_token, gss_OID *actual_mech,
			       gss_buffer_t output_token, OM_uint32 *ret_flags,
			       OM_uint32 *time_rec);
OM_uint32 gss_release_buffer(OM_uint32 *minor, gss_buffer_t buffer);
OM_uint32 gss_release_cred(OM_uint32 *minor, gss_cred_id_t *cred);
OM_uint32 gss_release_name(OM_uint32 *minor, gss_name_t *name);
OM_uint32 gss_unwrap(OM_uint32 *minor, gss_ctx_id_t ctx, gss_buffer_t input,
		     gss_buffer_t output, int *conf_state, OM_uint32 *qop_state);
OM_uint32 gss_wrap(OM_uint32 *minor, gss_ctx_id_t ctx, int conf_req, OM_uint32 qop,
		   gss_buffer_t input, int *conf_state, gss_buffer_t output);
OM_uint32 gss_wrap_size_limit(OM_uint32 *minor, gss_ctx_id_t ctx, int conf_req,
			      OM_uint32 qop, OM_uint32 req_output_size,
			      OM_uint32 *max_input_size);

static OM_uint32 gss_fail(OM_uint32 *minor)
{
	if (minor)
		*minor = 0;
	return SG_GSS_S_FAILURE;
}

/* "No credential cache": libpq's gssencmode=prefer then skips GSS quietly. */
OM_uint32 gss_acquire_cred(OM_uint32 *minor, gss_name_t name, OM_uint32 time_req,
			   gss_OID_set mechs, gss_cred_usage_t usage,
			   gss_cred_id_t *cred, gss_OID_set *actual_mechs,
			   OM_uint32 *time_rec)
{
	if (cred)
		*cred = NULL;
	return gss_fail(minor);
}

OM_uint32 gss_import_name(OM_uint32 *minor, gss_buffer_t name_buffer,
			  gss_OID name_type, gss_name_t *name)
{
	if (name)
		*name = NULL;
	return gss_fail(minor);
}

OM_uint32 gss_init_sec_context(OM_uint32 *minor, gss_cred_id_t cred,
			       gss_ctx_id_t *ctx, gss_name_t target, gss_OID mech,
			       OM_uint32 req_flags, OM_uint32 time_req,
			       gss_channel_bindings_t bindings,
			       gss_buffer_t input_token, gss_OID *actual_mech,
			       gss_buffer_t output_token, OM_uint32 *ret_flags,
			       OM_uint32 *time_rec)
{
	if (output_token) {
		output_token->length = 0;
		output_token->value = NULL;
	}
	return gss_fail(minor);
}

OM_uint32 gss_wrap(OM_uint32 *minor, gss_ctx_id_t ctx, int conf_req, OM_uint32 qop,
		   gss_buffer_t input, int *conf_state, gss_buffer_t output)
{
	return gss_fail(minor);
}

OM_uint32 gss_unwrap(OM_uint32 *minor, gss_ctx_id_t ctx, gss_buffer_t input,
		     gss_buffer_t output, int *conf_state, OM_uint32 *qop_state)
{
	return gss_fail(minor);
}

OM_uint32 gss_wrap_size_limit(OM_uint32 *minor, gss_ctx_id_t ctx, int conf_req,
			      OM_uint32 qop, OM_uint32 req_output_size,
			      OM_uint32 *max_input_size)
{
	return gss_fail(minor);
}

/*
 * libpq loops "while (message_context)" appending each message and then
 * calls gss_release_buffer on it; the text is static, so release only
 * forgets it.
 */
OM_uint32 gss_display_status(OM_uint32 *minor, OM_uint32 status, int status_type,
			     gss_OID mech, OM_uint32 *message_context,
			     gss_buffer_t status_string)
{
	if (minor)
		*minor = 0;
	if (message_context)
		*message_context = 0;
	if (status_string) {
		status_string->length = sizeof(gss_unavailable) - 1;
		status_string->value = (void *)gss_unavailable;
	}
	return SG_GSS_S_COMPLETE;
}

OM_uint32 gss_release_buffer(OM_uint32 *minor, gss_buffer_t buffer)
{
	if (minor)
		*minor = 0;
	if (buffer) {
		buffer->length = 0;
		buffer->value = NULL;
	}
	return SG_GSS_S_COMPLETE;
}

/* Nothing is ever allocated above, so releasing is just clearing. */
OM_uint32 gss_delete_sec_context(OM_uint32 *minor, gss_ctx_id_t *ctx,
				 gss_buffer_t output_token)
{
	if (ctx)
		*ctx = NULL;
	return gss_release_buffer(minor, output_token);
}

OM_uint32 gss_release_cred(OM_uint32 *minor, gss_cred_id_t *cred)
{
	if (cred)
		*cred = NULL;
	return gss_release_buffer(minor, NULL);
}

OM_uint32 gss_release_name(OM_uint32 *minor, gss_name_t *name)
{
	if (name)
		*name = NULL;
	return gss_release_buffer(minor, NULL);
}

/* LDAP: ldap_init returning NULL stops libpq's service lookup at once. */
typedef void LDAP;
typedef void LDAPMessage;
struct berval;

LDAP *ldap_init(const char *host, int port);
int ldap_set_option(LDAP *ld, int option, const void *value);
int ldap_simple_bind(LDAP *ld, const char *who, const char *password);
int ldap_result(LDAP *ld, int msgid, int all, struct timeval *timeout,
		LDAPMessage **result);
int ldap_search_st(LDAP *ld, const char *base, int scope, const char *filter,
		   char **attrs, int attrsonly, struct timeval *timeout,
		   LDAPMessage **result);
int ldap_count_entries(LDAP *ld, LDAPMessage *chain);
LDAPMessage *ldap_first_entry(LDAP *ld, LDAPMessage *chain);
struct berval **ldap_get_values_len(LDAP *ld, LDAPMessage *entry, const char *attr);
void ldap_value_free_len(struct berval **values);
int ldap_msgfree(LDAPMessage *message);
int ldap_unbind(LDAP *ld);
char *ldap_err2string(int error);

LDAP *ldap_init(const char *host, int port)
{
	errno = ENOSYS;
	return NULL;
}

int ldap_set_option(LDAP *ld, int option, const void *value)
{
	return SG_LDAP_NOT_SUPPORTED;
}

int ldap_simple_bind(LDAP *ld, const char *who, const char *password)
{
	return -1;
}

int ldap_result(LDAP *ld, int msgid, int all, struct timeval *timeout,
		LDAPMessage **result)
{
	if (result)
		*result = NULL;
	return -1;
}

int ldap_search_st(LDAP *ld, const char *base, int scope, const char *filter,
		   char **attrs, int attrsonly, struct timeval *timeout,
		   LDAPMessage **result)
{
	if (result)
		*result = NULL;
	return SG_LDAP_NOT_SUPPORTED;
}

int ldap_count_entries(LDAP *ld, LDAPMessage *chain)
{
	return -1;
}

LDAPMessage *ldap_first_entry(LDAP *ld, LDAPMessage *chain)
{
	return NULL;
}

struct berval **ldap_get_values_len(LDAP *ld, LDAPMessage *entry, const char *attr)
{
	return NULL;
}

void ldap_value_free_len(struct berval **values)
{
}

int ldap_msgfree(LDAPMessage *message)
{
	return 0;
}

int ldap_unbind(LDAP *ld)
{
	return 0;
}

char *ldap_err2string(int error)
{
	return (char *)ldap_unavailable;
}
