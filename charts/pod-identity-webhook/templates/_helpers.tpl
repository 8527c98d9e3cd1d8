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

{{- define "piw.image" -}}
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
PIW_SETTINGS: role-session-name (aws) and profiles.settings, comma-separated, sorted.
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
