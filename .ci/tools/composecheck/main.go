// Command composecheck loads a Compose file with compose-go (the loader docker compose
// itself uses) and then checks segflow's own rules on the resulting model.
//
//	composecheck [-q] [FILE]   (FILE defaults to docker-compose.yml)
//
// Loading does what `docker compose config` does: JSON-schema validation, interpolation with
// the process environment and a .env file next to FILE, normalization and the consistency
// checks (unknown services in depends_on, undeclared volumes/networks, ...). Any warning the
// loader logs (e.g. the obsolete `version:` key) is an error here.
//
// segflow's rules on top of the model:
//   - every service is either long-running, with a healthcheck (kafka and cassandra with
//     their expected probes), or a one-shot with restart "no" that waits on a healthy
//     service and is depended on with service_completed_successfully (so that
//     `docker compose up --wait` succeeds, see docker/compose#10596);
//   - every published port binds 127.0.0.1;
//   - every image is pinned: its tag is a full version (x.y.z, suffixes allowed) or it names
//     a digest, so the same file runs the same software next month;
//   - kafka publishes 9092 and cassandra 9042 on the same host ports, with the pinned images.
//
// Exit status: 0 valid (prints the project and its services), 1 invalid, 2 usage.
package main

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/sirupsen/logrus"
	"go.yaml.in/yaml/v4"
)

// expected describes a long-running service segflow relies on.
type expected struct {
	image     string
	port      uint32     // container port published on the same host port
	probeAlts [][]string // the healthcheck command must contain every string of one group
}

var required = map[string]expected{
	"kafka": {
		image: "apache/kafka:4.1.2",
		port:  9092,
		probeAlts: [][]string{
			{"/opt/kafka/bin/kafka-broker-api-versions.sh", "kafka:19092"},
			{"/opt/kafka/bin/kafka-topics.sh", "--list", "kafka:19092"},
		},
	},
	"cassandra": {
		image:     "cassandra:5.0.6",
		port:      9042,
		probeAlts: [][]string{{"cqlsh", "SELECT release_version FROM system.local"}},
	},
}

var requiredOneShots = []string{"kafka-init", "cassandra-migrate"}

// warningHook turns every loader warning into a failure.
type warningHook struct{ messages []string }

func (h *warningHook) Levels() []logrus.Level {
	return []logrus.Level{logrus.PanicLevel, logrus.FatalLevel, logrus.ErrorLevel, logrus.WarnLevel}
}

func (h *warningHook) Fire(entry *logrus.Entry) error {
	h.messages = append(h.messages, entry.Message)
	return nil
}

func main() {
	quiet := flag.Bool("q", false, "print nothing on success")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: composecheck [-q] [FILE]\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 1 {
		flag.Usage()
		os.Exit(2)
	}
	file := "docker-compose.yml"
	if flag.NArg() == 1 {
		file = flag.Arg(0)
	}

	project, problems := check(file)
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintf(os.Stderr, "composecheck: %s: %s\n", file, p)
		}
		fmt.Fprintf(os.Stderr, "composecheck: %s: INVALID (%d problem(s))\n", file, len(problems))
		os.Exit(1)
	}
	if !*quiet {
		names := project.ServiceNames()
		slices.Sort(names)
		fmt.Printf("composecheck: %s: OK (project %q)\n", file, project.Name)
		fmt.Printf("services: %s\n", strings.Join(names, " "))
	}
}

func check(file string) (*types.Project, []string) {
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil, []string{err.Error()}
	}
	raw, err := os.ReadFile(abs)
	if err != nil {
		return nil, []string{err.Error()}
	}
	var top map[string]any
	if err := yaml.Unmarshal(raw, &top); err != nil {
		return nil, []string{fmt.Sprintf("not YAML: %v", err)}
	}
	if _, ok := top["version"]; ok {
		return nil, []string{"top-level `version:` is obsolete in the Compose Specification; remove it"}
	}

	hook := &warningHook{}
	logrus.AddHook(hook)
	options, err := cli.NewProjectOptions(
		[]string{abs},
		cli.WithWorkingDirectory(filepath.Dir(abs)),
		cli.WithOsEnv,
		cli.WithEnvFiles(),
		cli.WithDotEnv,
		cli.WithInterpolation(true),
		cli.WithNormalization(true),
		cli.WithConsistency(true),
		cli.WithResolvedPaths(true),
		// Every profile ("observability" too): a service behind a profile is still checked.
		cli.WithProfiles([]string{"*"}),
	)
	if err != nil {
		return nil, []string{err.Error()}
	}
	project, err := options.LoadProject(context.Background())
	if err != nil {
		return nil, []string{err.Error()}
	}
	problems := make([]string, 0, len(hook.messages))
	for _, m := range hook.messages {
		problems = append(problems, "loader warning: "+m)
	}
	return project, append(problems, rules(project)...)
}

func rules(project *types.Project) []string {
	var problems []string
	bad := func(service, format string, args ...any) {
		problems = append(problems, fmt.Sprintf("service %q: ", service)+fmt.Sprintf(format, args...))
	}

	for _, name := range slices.Sorted(maps.Keys(required)) {
		if _, ok := project.Services[name]; !ok {
			problems = append(problems, fmt.Sprintf("missing required service %q", name))
		}
	}
	for _, name := range requiredOneShots {
		if _, ok := project.Services[name]; !ok {
			problems = append(problems, fmt.Sprintf("missing required one-shot service %q", name))
		}
	}

	// Which services a long-running service waits on until they exit successfully.
	adopted := map[string]bool{}
	for _, s := range project.Services {
		if !healthchecked(s) {
			continue
		}
		for dep, d := range s.DependsOn {
			if d.Condition == types.ServiceConditionCompletedSuccessfully {
				adopted[dep] = true
			}
		}
	}

	names := project.ServiceNames()
	slices.Sort(names)
	for _, name := range names {
		s := project.Services[name]

		for _, p := range s.Ports {
			if p.HostIP != "127.0.0.1" {
				on := fmt.Sprintf("%q", p.HostIP)
				if p.HostIP == "" {
					on = "every interface"
				}
				bad(name, "port %d is published on %s; bind it to 127.0.0.1 (\"127.0.0.1:%s:%d\")",
					p.Target, on, orAny(p.Published), p.Target)
			}
		}

		if s.Image != "" && !pinned(s.Image) {
			bad(name, "image %q is not pinned: use a full version tag (x.y.z) or a digest", s.Image)
		}

		hc := s.HealthCheck
		hasHealthcheck := healthchecked(s)
		switch {
		case hasHealthcheck:
			if adopted[name] {
				bad(name, "has a healthcheck but others wait for it to exit (service_completed_successfully)")
			}
			if hc.Interval == nil || hc.Timeout == nil || hc.Retries == nil {
				bad(name, "healthcheck needs explicit interval, timeout and retries")
			}
		case s.Restart == types.RestartPolicyNo:
			if !adopted[name] {
				bad(name, "one-shot service is not depended on with condition "+
					"service_completed_successfully by any long-running service, so "+
					"`docker compose up --wait` fails when it exits")
			}
			healthyDep := false
			for dep, d := range s.DependsOn {
				if d.Condition == types.ServiceConditionHealthy {
					healthyDep = true
				}
				if _, ok := project.Services[dep]; !ok {
					bad(name, "depends on unknown service %q", dep)
				}
			}
			if !healthyDep {
				bad(name, "one-shot service must wait for a dependency with condition service_healthy")
			}
		default:
			bad(name, "neither has a healthcheck nor is a one-shot with restart \"no\" (restart is %q)",
				s.Restart)
		}

		if want, ok := required[name]; ok {
			if s.Image != want.image {
				bad(name, "image is %q, expected %q", s.Image, want.image)
			}
			if !publishes(s, want.port) {
				bad(name, "must publish 127.0.0.1:%d:%d", want.port, want.port)
			}
			if hasHealthcheck && !probeMatches(hc.Test, want.probeAlts) {
				bad(name, "healthcheck %q is not the expected probe (one of %q)", hc.Test, want.probeAlts)
			}
			if hasHealthcheck && hc.StartPeriod == nil {
				bad(name, "healthcheck needs a start_period")
			}
			if !hasHealthcheck {
				bad(name, "must have a healthcheck")
			}
		}
	}

	if s, ok := project.Services["kafka-init"]; ok {
		if v := s.Environment["SEGFLOW_TOPIC_PARTITIONS"]; v == nil {
			bad("kafka-init", "SEGFLOW_TOPIC_PARTITIONS is not set")
		} else if n, err := strconv.Atoi(*v); err != nil || n < 1 {
			bad("kafka-init", "SEGFLOW_TOPIC_PARTITIONS=%q is not a positive integer", *v)
		}
		script := strings.Join(s.Command, " ")
		for _, want := range []string{"--if-not-exists", "segflow-commands", "segflow-commands-dlq"} {
			if !strings.Contains(script, want) {
				bad("kafka-init", "command does not mention %q", want)
			}
		}
	}
	if s, ok := project.Services["cassandra-migrate"]; ok {
		if !strings.Contains(strings.Join(s.Command, " "), "segflow db migrate") {
			bad("cassandra-migrate", "command does not run `segflow db migrate`")
		}
		for key, want := range map[string]string{
			"SEGFLOW_CASSANDRA__CONTACT_POINTS": "cassandra",
			"SEGFLOW_CASSANDRA__PORT":           "9042",
		} {
			if v := s.Environment[key]; v == nil || *v != want {
				bad("cassandra-migrate", "environment %s must be %q", key, want)
			}
		}
		mounted := false
		for _, v := range s.Volumes {
			if v.Target == "/src" && v.ReadOnly {
				mounted = true
			}
		}
		if !mounted {
			bad("cassandra-migrate", "must mount the checkout read-only at /src")
		}
	}
	return problems
}

// healthchecked: the service declares a healthcheck that actually runs.
func healthchecked(s types.ServiceConfig) bool {
	hc := s.HealthCheck
	return hc != nil && !hc.Disable && len(hc.Test) > 0 && hc.Test[0] != "NONE"
}

// pinnedTag: a full version, e.g. 4.1.2, v3.5.0, 3.11.14-slim-bookworm.
var pinnedTag = regexp.MustCompile(`^v?\d+\.\d+\.\d+([.+_-][0-9A-Za-z.+_-]+)?$`)

// pinned: the image reference names a digest or a tag that is a full version (not
// "latest", not a moving minor tag such as python:3.11-slim).
func pinned(image string) bool {
	if strings.Contains(image, "@sha256:") {
		return true
	}
	colon := strings.LastIndex(image, ":")
	if colon <= strings.LastIndex(image, "/") {
		return false // no tag at all: "latest"
	}
	return pinnedTag.MatchString(image[colon+1:])
}

func publishes(s types.ServiceConfig, port uint32) bool {
	want := strconv.FormatUint(uint64(port), 10)
	for _, p := range s.Ports {
		if p.Target == port && p.Published == want && p.HostIP == "127.0.0.1" {
			return true
		}
	}
	return false
}

func probeMatches(test types.HealthCheckTest, alternatives [][]string) bool {
	command := strings.Join(test, " ")
	for _, group := range alternatives {
		all := true
		for _, part := range group {
			if !strings.Contains(command, part) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}

func orAny(published string) string {
	if published == "" {
		return "<port>"
	}
	return published
}
