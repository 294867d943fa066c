// Uploading a package: drop a file (or choose one), watch the progress bar, then review the
// version form the server's parser pre-filled, and create the package version.
import { Alert, Button, Code, Group, NumberInput, Paper, Progress, Select, Stack, Text, TextInput } from "@mantine/core";
import { useRef, useState } from "react";
import { errorMessage } from "../../api/client";
import { formatBytes } from "../../lib/format";
import { prefillFromUpload, type UploadAnalysis, type VersionForm, versionRequest } from "../../lib/software";
import { uploadPackage, useCreateVersion, type VersionInfo } from "../../services/packages";
import { DetectionView } from "./DetectionView";

export function DropZone({ onFile, disabled }: { onFile: (f: File) => void; disabled?: boolean }) {
  const input = useRef<HTMLInputElement>(null);
  const [over, setOver] = useState(false);
  return (
    <Paper
      withBorder
      p="xl"
      data-testid="dropzone"
      style={{ borderStyle: "dashed", borderWidth: 2, textAlign: "center", background: over ? "var(--mantine-color-blue-0)" : undefined }}
      onDragOver={(e) => {
        e.preventDefault();
        setOver(true);
      }}
      onDragLeave={() => setOver(false)}
      onDrop={(e) => {
        e.preventDefault();
        setOver(false);
        const f = e.dataTransfer.files[0];
        if (f && !disabled) onFile(f);
      }}
    >
      <Stack gap="xs" align="center">
        <Text fw={500}>Drop a package file here</Text>
        <Text size="sm" c="dimmed">
          .deb, .rpm, .msi, .exe, pacman packages and script archives
        </Text>
        <Button variant="light" size="xs" disabled={disabled} onClick={() => input.current?.click()}>
          Choose a file
        </Button>
        <input
          ref={input}
          type="file"
          hidden
          aria-label="Package file"
          onChange={(e) => {
            const f = e.currentTarget.files?.[0];
            if (f) onFile(f);
            e.currentTarget.value = "";
          }}
        />
      </Stack>
    </Paper>
  );
}

const INSTALLER_TYPES = ["deb", "rpm", "pacman", "msi", "exe", "script_archive", "package_manager"];

export function VersionReview({ analysis, onCreated }: { analysis: UploadAnalysis; onCreated: (v: VersionInfo) => void }) {
  const [form, setForm] = useState<VersionForm>(() => prefillFromUpload(analysis));
  const create = useCreateVersion();
  const set = (patch: Partial<VersionForm>) => setForm((f) => ({ ...f, ...patch }));
  return (
    <form
      aria-label="New version"
      onSubmit={(e) => {
        e.preventDefault();
        create.mutate(
          { pkg: { name: form.package, displayName: form.displayName, publisher: form.publisher }, version: versionRequest(analysis, form) },
          { onSuccess: onCreated },
        );
      }}
    >
      <Stack>
        <Text size="sm" c="dimmed">
          {analysis.file_name} · {formatBytes(analysis.size)} · SHA-256 <Code>{analysis.sha256.slice(0, 16)}…</Code>
        </Text>
        <Group grow>
          <TextInput label="Package" required value={form.package} readOnly description="From the file; fixed by its metadata" />
          <TextInput label="Display name" value={form.displayName} onChange={(e) => set({ displayName: e.currentTarget.value })} />
          <TextInput label="Publisher" value={form.publisher} onChange={(e) => set({ publisher: e.currentTarget.value })} />
        </Group>
        <Group grow>
          <TextInput label="Version" required value={form.version} onChange={(e) => set({ version: e.currentTarget.value })} />
          <Select label="Installer type" data={INSTALLER_TYPES} value={form.installerType} disabled />
          <NumberInput label="Timeout (seconds)" min={1} value={form.timeoutSecs} onChange={(v) => set({ timeoutSecs: typeof v === "number" ? v : 3600 })} />
        </Group>
        <TextInput
          label="Install command"
          description="Empty: the installer type's default. {file} is the downloaded artifact, {dir} its directory."
          value={form.installCommand}
          onChange={(e) => set({ installCommand: e.currentTarget.value })}
          ff="monospace"
        />
        <TextInput label="Uninstall command" description="Empty: the installer type's default." value={form.uninstallCommand} onChange={(e) => set({ uninstallCommand: e.currentTarget.value })} />
        <TextInput
          label="Success exit codes"
          description="Comma-separated; empty: the installer type's defaults."
          value={form.successExitCodes}
          onChange={(e) => set({ successExitCodes: e.currentTarget.value })}
        />
        {analysis.suggested && (
          <div>
            <Text size="sm" fw={500}>
              Detection
            </Text>
            <DetectionView detection={analysis.suggested.spec.detection} />
          </div>
        )}
        {create.isError && (
          <Alert color="red" role="alert" title="The version was not created">
            {errorMessage(create.error)}
          </Alert>
        )}
        <Group justify="flex-end">
          <Button type="submit" loading={create.isPending} disabled={!form.version.trim()}>
            Create version
          </Button>
        </Group>
      </Stack>
    </form>
  );
}

export function UploadPanel({ onCreated }: { onCreated: (v: VersionInfo) => void }) {
  const [progress, setProgress] = useState<number | null>(null);
  const [file, setFile] = useState<File | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [analysis, setAnalysis] = useState<UploadAnalysis | null>(null);
  const start = (f: File) => {
    setFile(f);
    setError(null);
    setAnalysis(null);
    setProgress(0);
    uploadPackage(f, setProgress)
      .then(setAnalysis)
      .catch((e: unknown) => setError(e))
      .finally(() => setProgress(null));
  };
  return (
    <Stack>
      {!analysis && <DropZone onFile={start} disabled={progress !== null} />}
      {progress !== null && file && (
        <div>
          <Text size="sm">
            Uploading {file.name} ({formatBytes(file.size)})… {Math.round(progress * 100)} %
          </Text>
          <Progress value={progress * 100} animated aria-label="Upload progress" />
        </div>
      )}
      {error !== null && (
        <Alert color="red" role="alert" title="The upload failed">
          {errorMessage(error)}
        </Alert>
      )}
      {analysis && <VersionReview analysis={analysis} onCreated={onCreated} />}
    </Stack>
  );
}
