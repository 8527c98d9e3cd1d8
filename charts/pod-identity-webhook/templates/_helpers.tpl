{{/*
Names. Every object name is at most 63 characters (a Service name is a DNS label): the
full name is cut to 63, and a suffixed name cuts the full name to leave room for the suffix.
*/}}
{{- define "piw.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "piw.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* (dict "ctx" $ "suffix" "metrics") -> <fullname, shortened>-metrics, at most 63 characters */}}
{{- define "piw.suffixedName" -}}
{{- $max := sub 62 (len .suffix) | int }}
{{- printf "%s-%s" (include "piw.fullname" .ctx | trunc $max | trimSuffix "-") .suffix }}
{{- end }}

{{- define "piw.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "piw.labels" -}}
helm.sh/chart: {{ include "piw.chart" . }}
{{ include "piw.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: pod-identity-webhook
{{- end }}

{{/* Labels that select the webhook pods (never change them: Deployment selectors are immutable). */}}
{{- define "piw.selectorLabels" -}}
app.kubernetes.io/name: {{ include "piw.name" . }}
app.kubernetes.io/instance: {{ .Release.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "piw.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "piw.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The webhook image. There is no public image, so an empty repository, or the documentation's
example registry, is refused here: otherwise the pods would sit in ImagePullBackOff.
*/}}
{{- define "piw.image" -}}
{{- $repo := .Values.image.repository }}
{{- if not $repo }}
{{- fail "image.repository is required: there is no public image. Build it from the repository's Dockerfile, push it to your registry and pass --set image.repository=REGISTRY/pod-identity-webhook." }}
{{- end }}
{{- if regexMatch "^([^/]*\\.)?example\\.(com|org|net)(:[0-9]+)?/" $repo }}
{{- fail (printf "image.repository (%s) is the documentation's placeholder registry: set it to the registry you pushed the image to" $repo) }}
{{- end }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Object names derived from the full name. */}}
{{- define "piw.metricsServiceName" -}}{{ include "piw.suffixedName" (dict "ctx" . "suffix" "metrics") }}{{- end }}
{{- define "piw.profilesConfigMapName" -}}{{ include "piw.suffixedName" (dict "ctx" . "suffix" "profiles") }}{{- end }}
{{- define "piw.generatedSecretName" -}}{{ include "piw.suffixedName" (dict "ctx" . "suffix" "tls") }}{{- end }}
{{- define "piw.certificateName" -}}{{ include "piw.suffixedName" (dict "ctx" . "suffix" "cert") }}{{- end }}
{{- define "piw.selfSignedIssuerName" -}}{{ include "piw.suffixedName" (dict "ctx" . "suffix" "selfsigned") }}{{- end }}
{{- define "piw.caName" -}}{{ include "piw.suffixedName" (dict "ctx" . "suffix" "ca") }}{{- end }}

{{/*
Where the serving certificate comes from: "cert-manager" (certManager.enabled), "secret"
(tls.secret.name, with tls.secret.caBundle) or "generate" (neither). Setting both is refused
here rather than in values.schema.json: the schema's message for it ("String length must be
less than or equal to 0" under an if/then) would not say what is wrong.
*/}}
{{- define "piw.tlsSource" -}}
{{- if and .Values.certManager.enabled .Values.tls.secret.name }}
{{- fail (printf "certManager.enabled and tls.secret.name (%s) exclude each other: the serving certificate comes from cert-manager or from your Secret, not both. Unset one of them (neither: the chart generates the certificate)." .Values.tls.secret.name) }}
{{- else if .Values.certManager.enabled }}
{{- print "cert-manager" }}
{{- else if .Values.tls.secret.name }}
{{- print "secret" }}
{{- else }}
{{- print "generate" }}
{{- end }}
{{- end }}

{{/*
The Secret the pods mount the serving certificate from. Each source has its own name, so
switching sources never has Helm delete a Secret that cert-manager is writing (the pods roll
to the new Secret instead).
*/}}
{{- define "piw.tlsSecretName" -}}
{{- $source := include "piw.tlsSource" . }}
{{- if eq $source "secret" }}
{{- .Values.tls.secret.name }}
{{- else if eq $source "cert-manager" }}
{{- include "piw.certificateName" . }}
{{- else }}
{{- include "piw.generatedSecretName" . }}
{{- end }}
{{- end }}

{{/* DNS names of the webhook Service, for the serving certificate. */}}
{{- define "piw.serviceDNSNames" -}}
{{- $svc := include "piw.fullname" . }}
{{- $ns := .Release.Namespace }}
{{- list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.%s" $svc $ns .Values.clusterDomain) | toJson }}
{{- end }}

{{/* tls.secret.caBundle as the API wants it: base64 of the PEM (PEM input is encoded). */}}
{{- define "piw.userCABundle" -}}
{{- $ca := required "tls.secret.caBundle is required with tls.secret.name" .Values.tls.secret.caBundle | trim }}
{{- $encoded := ternary ($ca | b64enc) ($ca | nospace) (hasPrefix "-----BEGIN" $ca) }}
{{- if not (contains "-----BEGIN CERTIFICATE-----" (b64dec $encoded)) }}
{{- fail "tls.secret.caBundle must be a PEM CA certificate, or base64 of one" }}
{{- end }}
{{- $encoded }}
{{- end }}

{{/*
The profile files of the ConfigMap: file name -> INI text (aws.ini and vultr.ini from the
chart's profiles/, which are symlinks to the repository's profiles/; extra ones from values).
*/}}
{{- define "piw.profileFiles" -}}
{{- $files := dict }}
{{- if .Values.profiles.aws.enabled }}
{{- $_ := set $files "aws.ini" (.Files.Get "profiles/aws.ini") }}
{{- end }}
{{- if .Values.profiles.vultr.enabled }}
{{- $_ := set $files "vultr.ini" (.Files.Get "profiles/vultr.ini") }}
{{- end }}
{{- if .Values.profiles.azure.enabled }}
{{- $_ := set $files "azure.ini" (.Files.Get "profiles/azure.ini") }}
{{- end }}
{{- if .Values.profiles.gcp.enabled }}
{{- $_ := set $files "gcp.ini" (.Files.Get "profiles/gcp.ini") }}
{{- end }}
{{- range $name, $text := .Values.profiles.extra }}
{{- $file := printf "%s.ini" $name }}
{{- if hasKey $files $file }}
{{- fail (printf "profiles.extra.%s: profiles.%s.enabled already loads %s; disable it or rename the extra profile" $name $name $file) }}
{{- end }}
{{- $_ := set $files $file $text }}
{{- end }}
{{- toJson $files }}
{{- end }}

{{/*
PIW_SETTINGS: role-session-name (aws), the azure and gcp settings and profiles.settings,
comma-separated.
Settings that have their own value are refused here so that one value has one source.
*/}}
{{- define "piw.settings" -}}
{{- $pairs := list }}
{{- $own := dict }}
{{- if .Values.profiles.aws.enabled }}
{{- $_ := set $own "region" "profiles.aws.region" }}
{{- $_ := set $own "sts-regional-endpoints" "profiles.aws.stsRegionalEndpoints" }}
{{- $_ := set $own "role-session-name" "profiles.aws.roleSessionName" }}
{{- if .Values.profiles.aws.roleSessionName }}
{{- $pairs = append $pairs "role-session-name=true" }}
{{- end }}
{{- end }}
{{- if .Values.profiles.vultr.enabled }}
{{- $_ := set $own "vultr-sts-endpoint" "profiles.vultr.stsEndpoint" }}
{{- end }}
{{- with .Values.profiles.azure }}
{{- if .enabled }}
{{- $_ := set $own "azure-tenant-id" "profiles.azure.tenantId" }}
{{- $_ := set $own "azure-authority-host" "profiles.azure.authorityHost" }}
{{- with .tenantId }}
{{- $pairs = append $pairs (printf "azure-tenant-id=%s" .) }}
{{- end }}
{{- with .authorityHost }}
{{- $pairs = append $pairs (printf "azure-authority-host=%s" .) }}
{{- end }}
{{- end }}
{{- end }}
{{- if .Values.profiles.gcp.enabled }}
{{- $_ := set $own "gcp-region" "profiles.gcp.region" }}
{{- with .Values.profiles.gcp.region }}
{{- $pairs = append $pairs (printf "gcp-region=%s" .) }}
{{- end }}
{{- end }}
{{- range $name, $value := .Values.profiles.settings }}
{{- if hasKey $own $name }}
{{- fail (printf "profiles.settings.%s: use %s instead" $name (get $own $name)) }}
{{- end }}
{{- if kindIs "float64" $value }}
{{- $value = int64 $value }}
{{- end }}
{{- $pairs = append $pairs (printf "%s=%v" $name $value) }}
{{- end }}
{{- join "," $pairs }}
{{- end }}

{{/* terminationGracePeriodSeconds: the shutdown delay, the drain timeout and a margin. */}}
{{- define "piw.terminationGracePeriodSeconds" -}}
{{- add .Values.shutdown.delaySeconds .Values.shutdown.timeoutSeconds 5 }}
{{- end }}

{{/*
(INI text) -> JSON {"name": the [profile] name, "settings": the NAMEs of its [setting NAME]
sections}. Read line by line as the binary's INI reader does: surrounding blanks ignored,
";" and "#" start a comment, a section header is "[...]" at the start of a line.
*/}}
{{- define "piw.iniScan" -}}
{{- $section := "" }}
{{- $name := "" }}
{{- $settings := list }}
{{- range $line := splitList "\n" . }}
{{- $l := trim $line }}
{{- if hasPrefix "[" $l }}
{{- $section = regexReplaceAll "^\\[([^\\]]*)\\].*$" $l "${1}" }}
{{- if hasPrefix "setting " $section }}
{{- $settings = append $settings (trimPrefix "setting " $section | trim) }}
{{- end }}
{{- else if and (eq $section "profile") (regexMatch "^name[ \\t]*=" $l) }}
{{- $name = regexReplaceAll "^name[ \\t]*=[ \\t]*([^ \\t;#]*).*$" $l "${1}" }}
{{- end }}
{{- end }}
{{- dict "name" $name "settings" $settings | toJson }}
{{- end }}

{{/*
The profiles the webhook will load, as JSON: name -> the settings it declares. The built-in
stackit profile (the chart's profiles/stackit.ini is the file compiled into the binary)
unless profiles.extra.stackit replaces it, the enabled shipped ones, the extra ones, minus
profiles.disabled. Fails on an extra profile whose [profile] name differs from its key (the
binary would refuse NAME.ini) and on a disabled name that is not loaded.
*/}}
{{- define "piw.loadedProfiles" -}}
{{- $loaded := dict }}
{{- $texts := dict "stackit" (.Files.Get "profiles/stackit.ini") }}
{{- range $file, $text := include "piw.profileFiles" . | fromJson }}
{{- $_ := set $texts (trimSuffix ".ini" $file) $text }}
{{- end }}
{{- range $key, $text := $texts }}
{{- $scan := include "piw.iniScan" $text | fromJson }}
{{- if and (hasKey $.Values.profiles.extra $key) (ne $scan.name $key) }}
{{- if $scan.name }}
{{- fail (printf "profiles.extra.%s: the profile's [profile] name is %q, not %q. The key is the file name (%s.ini) and the binary refuses a file whose profile name differs: rename the key to %q or fix the name." $key $scan.name $key $key $scan.name) }}
{{- else }}
{{- fail (printf "profiles.extra.%s: no \"name = ...\" in a [profile] section: this is not a profile (see docs/profiles.md)" $key) }}
{{- end }}
{{- end }}
{{- $_ := set $loaded $key $scan.settings }}
{{- end }}
{{- range .Values.profiles.disabled }}
{{- if not (hasKey $loaded .) }}
{{- fail (printf "profiles.disabled: %q is not a loaded profile (loaded: %s)" . (keys $loaded | sortAlpha | join ", ")) }}
{{- end }}
{{- $_ := unset $loaded . }}
{{- end }}
{{- if not $loaded }}
{{- fail "profiles.disabled disables every loaded profile: the webhook would change no pod" }}
{{- end }}
{{- toJson $loaded }}
{{- end }}

{{/*
The checks the binary would otherwise only make when the pods start (and, with the pods
failing, after the rollout has begun). Renders nothing.
*/}}
{{- define "piw.checks" -}}
{{- $loaded := include "piw.loadedProfiles" . | fromJson }}
{{- $declared := dict }}
{{- range $profile, $settings := $loaded }}
{{- range $settings }}
{{- $_ := set $declared . $profile }}
{{- end }}
{{- end }}
{{- range $name, $_ := .Values.profiles.settings }}
{{- if not (hasKey $declared $name) }}
{{- fail (printf "profiles.settings.%s: no loaded profile declares [setting %s], so the webhook would refuse to start. Loaded profiles: %s; the settings they declare: %s." $name $name (keys $loaded | sortAlpha | join ", ") (keys $declared | sortAlpha | join ", " | default "none")) }}
{{- end }}
{{- end }}
{{- $_ := include "piw.image" . }}
{{- if and (eq .Values.webhook.scope "optIn") (eq .Values.webhook.optIn.podLabel .Values.webhook.skipLabel) }}
{{- fail (printf "webhook.optIn.podLabel and webhook.skipLabel are both %s: the label cannot both opt a pod in and skip it" .Values.webhook.skipLabel) }}
{{- end }}
{{- include "piw.clusterChecks" . }}
{{- end }}

{{/*
Checks that need the cluster. `lookup` answers only during a real install or upgrade
(`helm template` and --dry-run get nothing back), so they run when kube-system, which every
cluster has, can be seen.
*/}}
{{- define "piw.clusterChecks" -}}
{{- if lookup "v1" "Namespace" "" "kube-system" }}
{{- $source := include "piw.tlsSource" . }}
{{- if eq $source "secret" }}
{{- $secret := lookup "v1" "Secret" .Release.Namespace .Values.tls.secret.name }}
{{- if not $secret }}
{{- fail (printf "tls.secret.name: Secret %s/%s does not exist. Create it first (kubectl create secret tls %s --cert=tls.crt --key=tls.key --namespace %s), or unset tls.secret.name to let the chart generate a certificate." .Release.Namespace .Values.tls.secret.name .Values.tls.secret.name .Release.Namespace) }}
{{- end }}
{{- $data := get $secret "data" | default dict }}
{{- if not (and (get $data "tls.crt") (get $data "tls.key")) }}
{{- fail (printf "tls.secret.name: Secret %s/%s has no tls.crt and tls.key (a kubernetes.io/tls Secret has both)" .Release.Namespace .Values.tls.secret.name) }}
{{- end }}
{{- else if and (eq $source "cert-manager") (not (.Capabilities.APIVersions.Has "cert-manager.io/v1/Certificate")) }}
{{- fail "certManager.enabled: this cluster does not serve cert-manager.io/v1 Certificates. Install cert-manager (1.5 or later) first, or unset certManager.enabled." }}
{{- end }}
{{- end }}
{{- end }}

{{/* The failurePolicy: webhook.failurePolicy, or when empty the one the scope makes safe. */}}
{{- define "piw.failurePolicy" -}}
{{- if .Values.webhook.failurePolicy }}
{{- .Values.webhook.failurePolicy }}
{{- else if eq .Values.webhook.scope "optIn" }}
{{- print "Fail" }}
{{- else }}
{{- print "Ignore" }}
{{- end }}
{{- end }}

{{/* The webhook's rules (JSON): Pod CREATE only. */}}
{{- define "piw.webhookRules" -}}
{{- list (dict "operations" (list "CREATE") "apiGroups" (list "") "apiVersions" (list "v1") "resources" (list "pods") "scope" "Namespaced") | toJson }}
{{- end }}

{{/* The hook identity that registers the webhook once a replica is ready. */}}
{{- define "piw.registerName" -}}{{ include "piw.suffixedName" (dict "ctx" . "suffix" "register") }}{{- end }}
{{- define "piw.registerImage" -}}
{{- $img := .Values.registration.image }}
{{- if $img.digest }}
{{- printf "%s@%s" $img.repository $img.digest }}
{{- else }}
{{- printf "%s:%s" $img.repository $img.tag }}
{{- end }}
{{- end }}

{{/*
The identity map's ConfigMap as JSON {"name", "key"} ({} without a map): the chart's own
<fullname>-identity-map (key identity-map.json) or identityMap.existingConfigMap.
*/}}
{{- define "piw.identityMap" -}}
{{- $m := .Values.identityMap }}
{{- if and $m.data $m.existingConfigMap.name }}
{{- fail "identityMap.data and identityMap.existingConfigMap.name exclude each other: the map comes from the chart or from your ConfigMap" }}
{{- else if $m.data }}
{{- dict "name" (include "piw.suffixedName" (dict "ctx" . "suffix" "identity-map")) "key" "identity-map.json" | toJson }}
{{- else if $m.existingConfigMap.name }}
{{- dict "name" $m.existingConfigMap.name "key" $m.existingConfigMap.key | toJson }}
{{- else }}
{{- dict | toJson }}
{{- end }}
{{- end }}
