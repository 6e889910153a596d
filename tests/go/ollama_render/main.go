// Command ollama_render renders an Ollama Modelfile TEMPLATE the way Ollama's server does, so
// that tests can compare it byte for byte with the Jinja chat template rendered by transformers.
//
// It follows ollama/ollama template/template.go (Parse, Execute, collate): the template is
// parsed with missingkey=zero and Ollama's function names; a template that names .Messages is
// executed once with .System (all system messages joined by a blank line) and .Messages
// (consecutive messages of one role merged with a blank line); otherwise, or with "legacy",
// it is executed once per user turn with .System/.Prompt/.Response, and the last execution is
// cut just after {{ .Response }}. Written for Go 1.19 (Debian's golang-go): standard library only.
//
// Input (stdin, JSON): {"template": "...", "cases": [{"messages": [{"role", "content"}], "legacy": bool,
// "prompt": "...", "suffix": "..."}], "date": "YYYY-MM-DD" (optional: what currentDate returns)}
// (a case with prompt and suffix is an infill request)
// Output (stdout, JSON): {"results": [{"output": "..."} | {"error": "..."}]}
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/template"
	"text/template/parse"
	"time"
)

type message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// templateMessage has the fields Ollama exposes for each message.
type templateMessage struct {
	Role       string
	Content    string
	Thinking   string
	Images     []string
	ToolCalls  []any
	ToolName   string
	ToolCallID string
}

type renderCase struct {
	Messages []message `json:"messages"`
	Legacy   bool      `json:"legacy"`
	// Prompt and Suffix: a generate request with a suffix (infill), which Ollama executes
	// with only these (template.Execute, when both are non-empty).
	Prompt string `json:"prompt"`
	Suffix string `json:"suffix"`
}

type request struct {
	Template string       `json:"template"`
	Cases    []renderCase `json:"cases"`
	// Date, when set (YYYY-MM-DD), is what currentDate returns, so that a test can compare
	// with a Jinja template rendered on a fixed day.
	Date string `json:"date"`
}

type result struct {
	Output *string `json:"output,omitempty"`
	Error  string  `json:"error,omitempty"`
}

// funcs: the names Ollama defines, so that any template Ollama accepts parses here too.
var today = time.Now()

var funcs = template.FuncMap{
	"json": func(v any) string {
		b, _ := json.Marshal(v)
		return string(b)
	},
	"currentDate":      func(args ...string) string { return today.Format("2006-01-02") },
	"yesterdayDate":    func(args ...string) string { return today.AddDate(0, 0, -1).Format("2006-01-02") },
	"toTypeScriptType": func(v any) string { return "any" },
}

func parseTemplate(text string) (*template.Template, map[string]bool, error) {
	tmpl, err := template.New("").Option("missingkey=zero").Funcs(funcs).Parse(text)
	if err != nil {
		return nil, nil, err
	}
	vars := map[string]bool{}
	for _, t := range tmpl.Templates() {
		collectIdentifiers(t.Root, vars)
	}
	if !vars["messages"] && !vars["response"] {
		// Ollama appends {{ .Response }} to templates that have neither.
		tmpl.Tree.Root.Nodes = append(tmpl.Tree.Root.Nodes, responseAction())
	}
	return tmpl, vars, nil
}

func responseAction() *parse.ActionNode {
	field := &parse.FieldNode{NodeType: parse.NodeField, Ident: []string{"Response"}}
	cmd := &parse.CommandNode{NodeType: parse.NodeCommand, Args: []parse.Node{field}}
	return &parse.ActionNode{NodeType: parse.NodeAction, Pipe: &parse.PipeNode{NodeType: parse.NodePipe, Cmds: []*parse.CommandNode{cmd}}}
}

// collectIdentifiers records the lower-cased field and variable names a template uses,
// walking the same node kinds as Ollama's Identifiers.
func collectIdentifiers(n parse.Node, vars map[string]bool) {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return
		}
		for _, c := range n.Nodes {
			collectIdentifiers(c, vars)
		}
	case *parse.TemplateNode:
		if n.Pipe != nil {
			collectIdentifiers(n.Pipe, vars)
		}
	case *parse.ActionNode:
		collectIdentifiers(n.Pipe, vars)
	case *parse.IfNode:
		collectBranch(&n.BranchNode, vars)
	case *parse.RangeNode:
		collectBranch(&n.BranchNode, vars)
	case *parse.WithNode:
		collectBranch(&n.BranchNode, vars)
	case *parse.PipeNode:
		for _, c := range n.Cmds {
			for _, a := range c.Args {
				collectIdentifiers(a, vars)
			}
		}
	case *parse.FieldNode:
		for _, id := range n.Ident {
			vars[strings.ToLower(id)] = true
		}
	case *parse.VariableNode:
		for _, id := range n.Ident {
			vars[strings.ToLower(id)] = true
		}
	}
}

func collectBranch(b *parse.BranchNode, vars map[string]bool) {
	collectIdentifiers(b.Pipe, vars)
	if b.List != nil {
		collectIdentifiers(b.List, vars)
	}
	if b.ElseList != nil {
		collectIdentifiers(b.ElseList, vars)
	}
}

// collate joins the system messages and merges consecutive messages of one role.
func collate(msgs []message) (string, []*templateMessage) {
	var system []string
	var out []*templateMessage
	for _, m := range msgs {
		if m.Role == "system" {
			system = append(system, m.Content)
		}
		if len(out) > 0 && out[len(out)-1].Role == m.Role && m.Role != "tool" {
			out[len(out)-1].Content += "\n\n" + m.Content
		} else {
			out = append(out, &templateMessage{Role: m.Role, Content: m.Content})
		}
	}
	return strings.Join(system, "\n\n"), out
}

func render(text string, c renderCase) (string, error) {
	tmpl, vars, err := parseTemplate(text)
	if err != nil {
		return "", err
	}
	var b bytes.Buffer
	if c.Prompt != "" && c.Suffix != "" {
		err := tmpl.Execute(&b, map[string]any{
			"Prompt": c.Prompt, "Suffix": c.Suffix, "Response": "",
			"Think": false, "ThinkLevel": "", "IsThinkSet": false,
		})
		return b.String(), err
	}
	system, msgs := collate(c.Messages)
	if !c.Legacy && vars["messages"] {
		err := tmpl.Execute(&b, map[string]any{
			"System": system, "Messages": msgs, "Tools": nil, "Response": "",
			"Think": false, "ThinkLevel": "", "IsThinkSet": false,
		})
		return b.String(), err
	}

	values := func(system, prompt, response string) map[string]any {
		return map[string]any{
			"System": system, "Prompt": prompt, "Response": response,
			"Think": false, "ThinkLevel": "", "IsThinkSet": false,
		}
	}
	system = ""
	var prompt, response string
	flush := func() error {
		err := tmpl.Execute(&b, values(system, prompt, response))
		system, prompt, response = "", "", ""
		return err
	}
	for _, m := range msgs {
		switch m.Role {
		case "system":
			if prompt != "" || response != "" {
				if err := flush(); err != nil {
					return "", err
				}
			}
			system = m.Content
		case "user":
			if response != "" {
				if err := flush(); err != nil {
					return "", err
				}
			}
			prompt = m.Content
		case "assistant":
			response = m.Content
		}
	}
	st := &cutState{}
	root := cutAfterResponse(tmpl.Tree.Root.Copy(), st).(*parse.ListNode)
	// Like Ollama, the cut tree runs without the function map and the missingkey option.
	last, err := template.New("").AddParseTree("", &parse.Tree{Root: root})
	if err != nil {
		return "", err
	}
	if err := last.Execute(&b, values(system, prompt, response)); err != nil {
		return "", err
	}
	return b.String(), nil
}

// cutState is set once the {{ .Response }} field has been passed in document order.
type cutState struct{ cut bool }

// cutAfterResponse returns the tree with every node after the first .Response field removed,
// in the order Ollama's deleteNode walks it (lists, branches' lists, actions' pipes).
func cutAfterResponse(n parse.Node, st *cutState) parse.Node {
	if f, ok := n.(*parse.FieldNode); ok {
		for _, id := range f.Ident {
			if id == "Response" {
				st.cut = true
				return n
			}
		}
	}
	if st.cut {
		return nil
	}
	switch t := n.(type) {
	case *parse.ListNode:
		var kept []parse.Node
		for _, c := range t.Nodes {
			if k := cutAfterResponse(c, st); k != nil {
				kept = append(kept, k)
			}
		}
		t.Nodes = kept
	case *parse.IfNode:
		cutBranch(&t.BranchNode, st)
	case *parse.WithNode:
		cutBranch(&t.BranchNode, st)
	case *parse.RangeNode:
		cutBranch(&t.BranchNode, st)
	case *parse.ActionNode:
		p := cutAfterResponse(t.Pipe, st)
		if p == nil {
			return nil
		}
		t.Pipe = p.(*parse.PipeNode)
	case *parse.PipeNode:
		var cmds []*parse.CommandNode
		for _, c := range t.Cmds {
			var args []parse.Node
			for _, a := range c.Args {
				if k := cutAfterResponse(a, st); k != nil {
					args = append(args, k)
				}
			}
			if len(args) == 0 {
				return nil
			}
			c.Args = args
			cmds = append(cmds, c)
		}
		if len(cmds) == 0 {
			return nil
		}
		t.Cmds = cmds
	}
	return n
}

func cutBranch(b *parse.BranchNode, st *cutState) {
	b.List = cutList(b.List, st)
	if b.ElseList != nil {
		b.ElseList = cutList(b.ElseList, st)
	}
}

// cutList keeps an emptied list rather than nil, which text/template cannot execute.
func cutList(l *parse.ListNode, st *cutState) *parse.ListNode {
	if k, ok := cutAfterResponse(l, st).(*parse.ListNode); ok && k != nil {
		return k
	}
	l.Nodes = nil
	return l
}

func main() {
	var req request
	if err := json.NewDecoder(os.Stdin).Decode(&req); err != nil {
		fmt.Fprintln(os.Stderr, "bad input:", err)
		os.Exit(2)
	}
	if req.Date != "" {
		day, err := time.Parse("2006-01-02", req.Date)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bad date:", err)
			os.Exit(2)
		}
		today = day
	}
	results := make([]result, len(req.Cases))
	for i, c := range req.Cases {
		out, err := render(req.Template, c)
		if err != nil {
			results[i].Error = err.Error()
		} else {
			results[i].Output = &out
		}
	}
	if err := json.NewEncoder(os.Stdout).Encode(map[string]any{"results": results}); err != nil {
		fmt.Fprintln(os.Stderr, "cannot write output:", err)
		os.Exit(1)
	}
}
